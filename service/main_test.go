package service_test

import (
	"os"
	"testing"

	"github.com/callqueue/callqueue/queue/queuetest"
)

func TestMain(m *testing.M) {
	queuetest.RunNodeIfChild() // the NATS servers of a crash test run this binary
	os.Exit(m.Run())
}
