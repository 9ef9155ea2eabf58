package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadConfigurations loads each file of testdata/bad and expects exactly the message
// in the .err file beside it.
func TestBadConfigurations(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yml")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(file, ".yml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(file), data)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if got := err.Error(); got != strings.TrimSpace(string(want)) {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestDefaultsApplyToWhatAFileLeavesOut(t *testing.T) {
	cfg, err := Parse("partial.yml", []byte("queue:\n  workers: 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Queue.Workers != 8 || cfg.Queue.Size != 10000 || cfg.Webhook.Path != "/webhook" ||
		cfg.Mode != ModeDryRun || cfg.Webhook.MaxBodySize != 1<<20 ||
		cfg.ShutdownGracePeriod.Std() != 30*time.Second {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestAnEmptyFileIsTheDefaults(t *testing.T) {
	cfg, err := Parse("empty.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeDryRun {
		t.Errorf("mode %q, want dry-run", cfg.Mode)
	}
}

func TestClientCAImpliesRequiredClientCertificates(t *testing.T) {
	cfg, err := Parse("tls.yml", []byte("tls:\n  cert_file: a\n  key_file: b\n  client_ca_file: ca.pem\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS.ClientAuth != ClientAuthRequireAndVerify || !cfg.Authenticates() {
		t.Errorf("client_auth %q, want require_and_verify", cfg.TLS.ClientAuth)
	}
}

func TestTheExampleConfigurationLoads(t *testing.T) {
	cfg, err := Load(filepath.Join("..", "examples", "remediator.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mode != ModeDryRun {
		t.Errorf("the example must stay in dry-run, not %q", cfg.Mode)
	}
}

func TestRelativePathsResolveAgainstTheConfigurationFolder(t *testing.T) {
	cfg, err := Parse("/etc/remediator/remediator.yml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Resolve("token"); got != "/etc/remediator/token" {
		t.Errorf("resolved %q", got)
	}
	if got := cfg.Resolve("/run/secrets/token"); got != "/run/secrets/token" {
		t.Errorf("resolved %q", got)
	}
}
