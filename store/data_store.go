package store

import (
	"encoding/json"

	"github.com/callqueue/callqueue/config"
)

// The storage modes (contract §11) decide what of a call's content reaches
// its row. A change works on the whole content in memory first — the CRM
// update is built from it, do_not_call read from it, the LLM given its
// transcript — and only what the mode keeps is written.

// noteStorage marks the call as stored under its integration's current
// mode when this change brings content (a post-call) or ends the call (a
// minimal call then gives up its dynamic variables, which it kept until
// its last dial).
func (c *Call) noteStorage(content, ends bool) {
	if c.policy.Store == "" || !content && !(ends && c.policy.Store == config.StoreMinimal) {
		return
	}
	c.DataStore = c.policy.Store
}

// storedContent is what of c's content its row keeps under c.DataStore.
type storedContent struct {
	transcript, analysis, metadata, summary *string
	// clearVariables: the call's dynamic variables are dropped.
	clearVariables bool
}

func (c *Call) storedContent() storedContent {
	s := storedContent{transcript: jsonText(c.Transcript), analysis: jsonText(c.Analysis), metadata: jsonText(c.Metadata),
		summary: c.Summary}
	switch c.DataStore {
	case config.StoreNoContent:
		s.transcript = nil
	case config.StoreMinimal:
		s = storedContent{clearVariables: c.Status.Terminal()}
	}
	return s
}

// analysisContent is what an LLM analysis of c needs that c's row will
// not keep: its transcript and the agent's analysis, held with the
// pending analysis until it is settled (nil when the row keeps them).
func (c *Call) analysisContent() (transcript, agentAnalysis *string) {
	if c.DataStore == config.StoreNoContent || c.DataStore == config.StoreMinimal {
		transcript = jsonText(c.Transcript)
	}
	if c.DataStore == config.StoreMinimal {
		agentAnalysis = jsonText(c.Analysis)
	}
	return transcript, agentAnalysis
}

// minimalPayloadContent are the parts of a CRM update that a minimal call
// keeps only until the update is delivered (or has failed for good).
var minimalPayloadContent = []string{"summary", "analysis", "extracted", "dynamicVariables"}

// amendedPayload is the patch an amended analysis makes to a held CRM
// update: what the analysis changed. The rest stays as the update was
// written (a minimal call's row no longer has its dynamic variables).
func amendedPayload(c *Call, event string) (json.RawMessage, error) {
	p := crmPayload(c, event)
	delete(p, "dynamicVariables")
	delete(p, "phoneNumber")
	delete(p, "recordId")
	return json.Marshal(p)
}
