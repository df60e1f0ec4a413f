package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterJetStream exports, from the server's stream and consumer info at
// scrape time, every callqueue stream's size and every durable consumer's
// backlog: the same numbers whichever replica is scraped, with nothing
// counted on the message path. callqueue_jetstream_up is 0 when JetStream
// does not answer.
func (m *Metrics) RegisterJetStream(js jetstream.JetStream) {
	var (
		up         = prometheus.NewDesc("callqueue_jetstream_up", "1 when JetStream answered the last stream listing, else 0.", nil, nil)
		messages   = prometheus.NewDesc("callqueue_jetstream_stream_messages", "Messages stored in a stream.", []string{"stream"}, nil)
		bytes      = prometheus.NewDesc("callqueue_jetstream_stream_bytes", "Bytes stored in a stream.", []string{"stream"}, nil)
		replicas   = prometheus.NewDesc("callqueue_jetstream_stream_current_replicas", "Replicas of a stream that are current with its leader (the leader included).", []string{"stream"}, nil)
		labels     = []string{"stream", "consumer"}
		pending    = prometheus.NewDesc("callqueue_jetstream_consumer_pending_messages", "Messages not yet delivered to a consumer.", labels, nil)
		ackPending = prometheus.NewDesc("callqueue_jetstream_consumer_ack_pending_messages", "Messages delivered and not yet acknowledged.", labels, nil)
		redeliv    = prometheus.NewDesc("callqueue_jetstream_consumer_redelivered_messages", "Messages delivered more than once and not yet acknowledged.", labels, nil)
	)
	type reading struct {
		streams   []*jetstream.StreamInfo
		consumers []*jetstream.ConsumerInfo
	}
	read := Cached(time.Second, func(ctx context.Context) (reading, error) {
		var r reading
		names := js.StreamNames(ctx)
		for name := range names.Name() {
			if !strings.HasPrefix(name, "CALLQUEUE_") {
				continue
			}
			s, err := js.Stream(ctx, name)
			if err != nil {
				return r, err
			}
			r.streams = append(r.streams, s.CachedInfo())
			list := s.ListConsumers(ctx)
			for ci := range list.Info() {
				r.consumers = append(r.consumers, ci)
			}
			if err := list.Err(); err != nil {
				return r, err
			}
		}
		return r, names.Err()
	})
	m.Registry.MustRegister(&sampled{
		descs: []*prometheus.Desc{up, messages, bytes, replicas, pending, ackPending, redeliv},
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) {
			r, err := read(ctx)
			if err != nil {
				ch <- gauge(up, 0)
				return
			}
			ch <- gauge(up, 1)
			for _, s := range r.streams {
				ch <- gauge(messages, float64(s.State.Msgs), s.Config.Name)
				ch <- gauge(bytes, float64(s.State.Bytes), s.Config.Name)
				current := 1.0 // the leader, or the only server
				if s.Cluster != nil {
					for _, p := range s.Cluster.Replicas {
						if p.Current {
							current++
						}
					}
				}
				ch <- gauge(replicas, current, s.Config.Name)
			}
			for _, c := range r.consumers {
				ch <- gauge(pending, float64(c.NumPending), c.Stream, c.Name)
				ch <- gauge(ackPending, float64(c.NumAckPending), c.Stream, c.Name)
				ch <- gauge(redeliv, float64(c.NumRedelivered), c.Stream, c.Name)
			}
		},
	})
}
