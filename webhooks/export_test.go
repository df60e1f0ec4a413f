package webhooks

// KeyedCallID exposes the derivation of call ids to tests.
var KeyedCallID = keyedCallID
