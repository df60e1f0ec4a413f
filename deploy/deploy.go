// Package deploy holds callqueue's deployment files (compose, Kubernetes,
// Prometheus rules, Grafana dashboards). Its tests prove them: the rules pass
// promtool's unit tests, and every rule and dashboard query evaluates in a
// real Prometheus scraping a running callqueue.
package deploy
