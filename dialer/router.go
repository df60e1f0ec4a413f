package dialer

import (
	"context"
	"fmt"
	"net/http"

	"github.com/callqueue/callqueue/egress"
)

// Router dials through the integration's configured platform
// (voice.provider): the VA, ElevenLabs or the simulator.
type Router struct {
	va         *VA
	elevenLabs *ElevenLabs
	simulator  *Simulator
}

// NewRouter returns a Router whose clients share client; a nil client gets
// one with TimeoutDefault.
func NewRouter(client *http.Client) *Router {
	if client == nil {
		client = egress.NewClient(egress.Policy{}, TimeoutDefault)
	}
	return &Router{va: NewVA(client), elevenLabs: NewElevenLabs(client)}
}

// WithSimulator lets the router dial voice.provider "simulator" through sim.
func (r *Router) WithSimulator(sim *Simulator) *Router {
	r.simulator = sim
	return r
}

// Originate implements Dialer. An unknown provider is a configuration fault,
// reported as a RejectedError so that it fails the attempt without tripping
// the integration's breaker.
func (r *Router) Originate(ctx context.Context, req Request) (Result, error) {
	switch req.Voice.Provider {
	case "va":
		return r.va.Originate(ctx, req)
	case "elevenlabs":
		return r.elevenLabs.Originate(ctx, req)
	case "simulator":
		if r.simulator != nil {
			return r.simulator.Originate(ctx, req)
		}
	}
	return Result{}, &RejectedError{Reason: fmt.Sprintf("unknown voice provider %q", req.Voice.Provider)}
}

var _ Dialer = (*Router)(nil)
