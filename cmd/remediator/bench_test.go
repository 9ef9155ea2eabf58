package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/audit"
	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/remediate"
	"github.com/remediator/remediator/state"
)

// BenchmarkDurableWebhook measures the webhook as serve assembles it: each notification
// made durable in the state store (group commit) and its receipt in the audit log,
// with workers forgetting handled alerts, under concurrent requests.
func BenchmarkDurableWebhook(b *testing.B) {
	dir := b.TempDir()
	log, err := audit.Open(filepath.Join(dir, "audit"), audit.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer log.Close()
	queue := remediate.NewQueue(100000)
	journal, _, err := state.OpenJournal(filepath.Join(dir, "intake"), state.JournalOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer journal.Close()
	intake := remediate.NewIntake(journal, queue, zap.NewNop())
	go func() {
		for {
			a, ok := queue.Next(context.Background())
			if !ok {
				return
			}
			intake.Done(&a)
		}
	}()
	defer queue.Close()

	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("bench"), 0o600); err != nil {
		b.Fatal(err)
	}
	auth, err := handler.NewAuthenticator(config.Auth{BearerTokenFile: tokenFile}, nil, func(p string) string { return p })
	if err != nil {
		b.Fatal(err)
	}
	srv := handler.New(handler.Options{
		WebhookPath: "/webhook",
		Settings:    handler.Settings{Auth: auth, MaxBodySize: 1 << 20, RetryAfter: 1e9},
		Intake:      intake,
		Registry:    prometheus.NewRegistry(),
		Logger:      zap.NewNop(),
		Receipts:    &auditTrail{log: log, logger: zap.NewNop()},
	})
	srv.SetReady(true)
	body, err := os.ReadFile("../../testdata/notifications/load-10-alerts.json")
	if err != nil {
		b.Fatal(err)
	}

	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, "/webhook", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer bench")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
		}
	})
}
