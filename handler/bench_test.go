package handler_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/remediate"
)

// loadBody is the notification scripts/load.sh posts: ten firing alerts, about 7 KB.
const loadBody = "../testdata/notifications/load-10-alerts.json"

// benchQueueSize holds far more alerts than the draining goroutine ever lets wait.
const benchQueueSize = 1 << 14

// BenchmarkWebhook measures one notification through the whole webhook: bearer check,
// body read, decode, validation and queueing.
func BenchmarkWebhook(b *testing.B) {
	body := readLoadBody(b)
	const token = "load-test-token"
	srv := newBenchServer(b, token)
	req := httptest.NewRequest(http.MethodPost, "/webhook", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(len(body))

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("webhook answered %d, want 200: %s", rec.Code, rec.Body.String())
		}
	}
}

// BenchmarkDecodeNotification measures decoding and validating the body alone.
func BenchmarkDecodeNotification(b *testing.B) {
	body := readLoadBody(b)

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		n, err := handler.DecodeNotification(body)
		if err != nil {
			b.Fatalf("decoding %s: %v", loadBody, err)
		}
		if len(n.Alerts) != 10 {
			b.Fatalf("decoded %d alerts, want 10", len(n.Alerts))
		}
	}
}

func readLoadBody(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile(loadBody)
	if err != nil {
		b.Fatalf("reading the load notification: %v", err)
	}
	return body
}

// newBenchServer returns a ready Server that takes token as its bearer credential and
// queues into a queue that a goroutine keeps empty.
func newBenchServer(b *testing.B, token string) *handler.Server {
	b.Helper()
	tokenFile := filepath.Join(b.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		b.Fatalf("writing token file: %v", err)
	}
	auth, err := handler.NewAuthenticator(config.Auth{BearerTokenFile: tokenFile}, nil,
		func(p string) string { return p })
	if err != nil {
		b.Fatalf("creating authenticator: %v", err)
	}

	queue := remediate.NewQueue(benchQueueSize)
	drainQueue(b, queue)
	defaults := config.Default()
	srv := handler.New(handler.Options{
		WebhookPath: "/webhook",
		Settings: handler.Settings{
			Auth:        auth,
			MaxBodySize: int64(defaults.Webhook.MaxBodySize),
			RetryAfter:  defaults.Queue.RetryAfter.Std(),
		},
		Intake:   benchIntake{queue},
		Registry: prometheus.NewRegistry(),
		Logger:   zap.NewNop(),
	})
	srv.SetReady(true)
	return srv
}

// drainQueue takes alerts off queue until the benchmark ends, so that it never fills.
func drainQueue(b *testing.B, queue *remediate.Queue) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, ok := queue.Next(ctx); !ok {
				return
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-done
	})
}

// benchIntake queues alerts without storing them: the receiver alone is measured here.
type benchIntake struct{ q *remediate.Queue }

func (bi benchIntake) Accept(_ []byte, alerts []remediate.Alert) error { return bi.q.Accept(alerts) }
