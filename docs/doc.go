// Package docs holds callqueue's documentation by task (README.md at the
// repository's root is the map) and builds the pages into the binary, where
// the console serves them (Render, Files). Its tests keep the pages true to
// the code — every environment variable the code reads is in
// configuration.md and every one listed there is read, the integration keys
// and their defaults are the code's, every relative link and anchor between
// the pages resolves, and the requests, metrics, alerts and make targets the
// pages name exist.
package docs
