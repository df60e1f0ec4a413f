package api

import (
	"regexp"
	"strings"
)

// e164 is a phone number as the service stores it.
var e164 = regexp.MustCompile(`^\+[0-9]{2,15}$`)

// spreadsheetCell defuses a CSV cell that a spreadsheet would run as a
// formula (contract §6): one beginning with =, +, -, @, a tab or a carriage
// return gets a leading apostrophe. A phone number in E.164 is data, not a
// formula, and stays as it is.
func spreadsheetCell(cell string) string {
	if cell == "" || !strings.ContainsRune("=+-@\t\r", rune(cell[0])) || e164.MatchString(cell) {
		return cell
	}
	return "'" + cell
}
