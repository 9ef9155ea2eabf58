package config

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/strictyaml"
)

// Mode says whether mutating actions run (live) or are only planned (dry-run).
type Mode string

// The modes. Dry-run is the default: an operator chooses live explicitly.
const (
	ModeDryRun Mode = "dry-run"
	ModeLive   Mode = "live"
)

// Config is the main configuration file.
type Config struct {
	// Mode is dry-run (the default) or live. Policies may be more careful, never less.
	Mode Mode `yaml:"mode"`
	// Webhook configures the endpoint Alertmanager posts to.
	Webhook Webhook `yaml:"webhook"`
	// TLS, when set, serves HTTPS, optionally verifying client certificates.
	TLS *TLS `yaml:"tls"`
	// Queue bounds the accepted alerts waiting for a worker.
	Queue Queue `yaml:"queue"`
	// ShutdownGracePeriod bounds how long a stopping server finishes requests and drains
	// queued alerts. Default 30s.
	ShutdownGracePeriod Duration `yaml:"shutdown_grace_period"`
	// PolicyFiles are paths or globs of policy files, relative to this file. Default none.
	PolicyFiles []string `yaml:"policy_files"`
	// Alertmanager is where escalations are sent.
	Alertmanager Alertmanager `yaml:"alertmanager"`

	// File is the path the configuration was read from, empty for the embedded defaults.
	File string `yaml:"-"`
}

// Webhook configures the endpoint Alertmanager posts notifications to.
type Webhook struct {
	// Path is the URL path of the webhook. Default /webhook.
	Path string `yaml:"path"`
	// MaxBodySize is the largest body read; larger ones get 413. Default 1MiB.
	MaxBodySize ByteSize `yaml:"max_body_size"`
	// Auth says which credentials a caller must present.
	Auth Auth `yaml:"auth"`
}

// Auth names the credentials the webhook, the plan endpoint and the admin endpoints
// accept. A request passes when it presents any one configured credential. With none
// configured and no client-certificate verification, serve generates a bearer token in
// the storage directory, unless AllowUnauthenticated is set.
type Auth struct {
	// BearerTokenFile holds the token expected in "Authorization: Bearer <token>".
	BearerTokenFile string `yaml:"bearer_token_file"`
	// BasicAuth, when set, accepts HTTP basic authentication.
	BasicAuth *BasicAuth `yaml:"basic_auth"`
	// AllowUnauthenticated accepts requests without credentials. Default false; meant
	// for networks where something else authenticates callers.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
}

// BasicAuth is a user name and a file holding the password.
type BasicAuth struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
}

// Client-certificate policies of the TLS block.
const (
	ClientAuthNone             = "none"
	ClientAuthVerifyIfGiven    = "verify_if_given"
	ClientAuthRequireAndVerify = "require_and_verify"
)

// TLS serves the endpoints over HTTPS.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile holds the CAs that sign client certificates.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none (the default without a client CA), verify_if_given, or
	// require_and_verify (the default with a client CA). A verified client certificate
	// authenticates a request on its own.
	ClientAuth string `yaml:"client_auth"`
}

// Queue bounds the alerts accepted but not yet handled.
type Queue struct {
	// Size is how many alerts may wait; a notification that does not fit gets 503 with
	// Retry-After. Default 10000.
	Size int `yaml:"size"`
	// Workers is how many alerts are handled at once. Default 4.
	Workers int `yaml:"workers"`
	// RetryAfter is what a 503 tells Alertmanager to wait. Default 10s.
	RetryAfter Duration `yaml:"retry_after"`
}

// Alertmanager is the Alertmanager escalations are posted to.
type Alertmanager struct {
	// URL is its base URL, such as http://alertmanager:9093. Default none: escalations
	// fail until it is set.
	URL string `yaml:"url"`
	// Timeout bounds each call. Default 10s.
	Timeout Duration `yaml:"timeout"`
	// BearerTokenFile, when set, authenticates the calls.
	BearerTokenFile string `yaml:"bearer_token_file"`
}

// Reserved paths that the webhook path may not take.
var reservedPaths = []string{"/healthz", "/readyz", "/metrics", "/plan", "/-/reload", "/-/pause", "/-/resume"}

// Default returns the embedded defaults: what serve runs on without a configuration file.
func Default() *Config {
	return &Config{
		Mode: ModeDryRun,
		Webhook: Webhook{
			Path:        "/webhook",
			MaxBodySize: 1 << 20,
		},
		Queue: Queue{
			Size:       10000,
			Workers:    4,
			RetryAfter: Duration(10 * time.Second),
		},
		ShutdownGracePeriod: Duration(30 * time.Second),
		Alertmanager:        Alertmanager{Timeout: Duration(10 * time.Second)},
	}
}

// Load reads and validates the configuration file at file. Every problem is returned
// together, each with its line and field path.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	return Parse(file, data)
}

// Parse decodes and validates data as if read from file.
func Parse(file string, data []byte) (*Config, error) {
	cfg := Default()
	pos, err := strictyaml.Decode(file, data, cfg)
	if err != nil {
		return nil, err
	}
	cfg.File = file
	if err := cfg.validate(pos).Err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Dir is the folder that relative paths in the configuration are resolved against.
func (c *Config) Dir() string {
	if c.File == "" {
		return "."
	}
	return path.Dir(c.File)
}

// Resolve makes p, a path from the configuration, relative to the configuration's folder.
func (c *Config) Resolve(p string) string {
	if p == "" || path.IsAbs(p) {
		return p
	}
	return path.Join(c.Dir(), p)
}

func (c *Config) validate(pos *strictyaml.Positions) strictyaml.Errors {
	var errs strictyaml.Errors
	add := func(path, format string, args ...any) {
		errs = append(errs, pos.Errorf(path, format, args...))
	}

	if c.Mode != ModeDryRun && c.Mode != ModeLive {
		add("mode", "must be %q or %q, not %q", ModeDryRun, ModeLive, c.Mode)
	}
	c.validateWebhook(add)
	c.validateTLS(add)
	if c.Queue.Size < 1 {
		add("queue.size", "must be at least 1, not %d", c.Queue.Size)
	}
	if c.Queue.Workers < 1 || c.Queue.Workers > 1024 {
		add("queue.workers", "must be between 1 and 1024, not %d", c.Queue.Workers)
	}
	if c.Queue.RetryAfter < Duration(time.Second) {
		add("queue.retry_after", "must be at least 1s, not %s", c.Queue.RetryAfter)
	}
	if c.ShutdownGracePeriod < 0 {
		add("shutdown_grace_period", "must not be negative")
	}
	if c.Alertmanager.URL != "" && !strings.HasPrefix(c.Alertmanager.URL, "http://") &&
		!strings.HasPrefix(c.Alertmanager.URL, "https://") {
		add("alertmanager.url", "must start with http:// or https://, not %q", c.Alertmanager.URL)
	}
	for i, p := range c.PolicyFiles {
		if strings.TrimSpace(p) == "" {
			add(fmt.Sprintf("policy_files[%d]", i), "must not be empty")
		}
	}
	return errs
}

func (c *Config) validateWebhook(add func(string, string, ...any)) {
	w := c.Webhook
	switch {
	case !strings.HasPrefix(w.Path, "/"):
		add("webhook.path", "must start with /, not %q", w.Path)
	case slices.Contains(reservedPaths, w.Path):
		add("webhook.path", "%q is reserved for another endpoint", w.Path)
	}
	if w.MaxBodySize < 1024 || w.MaxBodySize > 64<<20 {
		add("webhook.max_body_size", "must be between 1KiB and 64MiB, not %s", w.MaxBodySize)
	}
	if ba := w.Auth.BasicAuth; ba != nil {
		if ba.Username == "" {
			add("webhook.auth.basic_auth.username", "required")
		}
		if ba.PasswordFile == "" {
			add("webhook.auth.basic_auth.password_file", "required")
		}
	}
}

func (c *Config) validateTLS(add func(string, string, ...any)) {
	t := c.TLS
	if t == nil {
		return
	}
	if t.CertFile == "" {
		add("tls.cert_file", "required")
	}
	if t.KeyFile == "" {
		add("tls.key_file", "required")
	}
	switch t.ClientAuth {
	case "":
		t.ClientAuth = ClientAuthNone
		if t.ClientCAFile != "" {
			t.ClientAuth = ClientAuthRequireAndVerify
		}
	case ClientAuthNone:
	case ClientAuthVerifyIfGiven, ClientAuthRequireAndVerify:
		if t.ClientCAFile == "" {
			add("tls.client_ca_file", "required when client_auth is %s", t.ClientAuth)
		}
	default:
		add("tls.client_auth", "must be one of none, verify_if_given, require_and_verify, not %q", t.ClientAuth)
	}
}

// Authenticates reports whether a request can be authenticated at all: some credential
// is configured, or client certificates are required.
func (c *Config) Authenticates() bool {
	a := c.Webhook.Auth
	return a.BearerTokenFile != "" || a.BasicAuth != nil ||
		(c.TLS != nil && c.TLS.ClientAuth == ClientAuthRequireAndVerify)
}
