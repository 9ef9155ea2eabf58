package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	"go.uber.org/zap"

	"github.com/remediator/remediator/audit"
	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/remediate"
	"github.com/remediator/remediator/state"
)

// defaultListenAddress is where serve listens unless told otherwise.
const defaultListenAddress = ":9795"

// generatedTokenFile is the name, in the storage directory, of the bearer token serve
// creates when no credential is configured.
const generatedTokenFile = "webhook.token"

type serveFlags struct {
	configFile    string
	listenAddress string
	storagePath   string
	logLevel      string
	logFormat     string
	memoryLimit   string
}

func registerServe(app *kingpin.Application, commands map[string]func(context.Context) int, stdout, stderr io.Writer) {
	f := &serveFlags{}
	cmd := app.Command("serve", "Receive Alertmanager notifications and run policies.").Default()
	cmd.Flag("config.file", "Main configuration file; without it, the embedded defaults.").StringVar(&f.configFile)
	cmd.Flag("web.listen-address", "Address to listen on.").Default(defaultListenAddress).StringVar(&f.listenAddress)
	cmd.Flag("storage.path", "Directory for state: guards, intake, audit log, generated token.").
		Default("data").StringVar(&f.storagePath)
	cmd.Flag("log.level", "Log level: debug, info, warn, error.").Default("info").StringVar(&f.logLevel)
	cmd.Flag("log.format", "Log format: json or console.").Default("json").EnumVar(&f.logFormat, "json", "console")
	cmd.Flag("memory.limit", "Soft limit of the Go runtime's memory, such as 24MiB; 0 for none. "+
		"GOMEMLIMIT, when set, wins.").Default("24MiB").StringVar(&f.memoryLimit)

	commands["serve"] = func(ctx context.Context) int {
		logger, err := newLogger(f.logLevel, f.logFormat, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "remediator: %s\n", err)
			return 2
		}
		defer func() { _ = logger.Sync() }()

		if err := setMemoryLimit(f.memoryLimit); err != nil {
			logger.Error("parsing --memory.limit", zap.Error(err))
			return 2
		}
		if err := serve(ctx, f, logger); err != nil {
			logger.Error("serve failed", zap.Error(err))
			return 1
		}
		return 0
	}
}

// loadConfig reads --config.file, or returns the embedded defaults without one.
func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return config.Default(), nil
	}
	return config.Load(file)
}

func serve(ctx context.Context, f *serveFlags, logger *zap.Logger) error {
	cfg, rules, err := loadAll(f.configFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.storagePath, 0o700); err != nil {
		return fmt.Errorf("creating storage directory: %w", err)
	}
	settings, err := loadSettings(cfg, f.storagePath, logger)
	if err != nil {
		return err
	}
	store, err := state.OpenBolt(f.storagePath, state.BoltOptions{})
	if err != nil {
		return fmt.Errorf("opening the state store: %w", err)
	}
	defer func() { _ = store.Close() }()

	auditLog, err := audit.Open(filepath.Join(f.storagePath, "audit"), audit.Options{Logger: logger.Named("audit")})
	if err != nil {
		return fmt.Errorf("opening the audit log: %w", err)
	}
	defer func() { _ = auditLog.Close() }()
	trail := &auditTrail{log: auditLog, logger: logger.Named("audit")}

	journal, stored, err := state.OpenJournal(filepath.Join(f.storagePath, "intake"), state.JournalOptions{})
	if err != nil {
		return fmt.Errorf("opening the intake journal: %w", err)
	}
	defer func() { _ = journal.Close() }()
	pending := remediate.Restore(stored, decodeStored, logger.Named("intake"))
	reg := newRegistry()
	queue := remediate.NewQueue(cfg.Queue.Size + len(pending))
	queue.Register(reg)
	intake := remediate.NewIntake(journal, queue, logger.Named("intake"))
	engine := remediate.NewEngine(rules, reg, logger.Named("remediate"),
		remediate.WithStore(store), remediate.WithIntake(intake), remediate.WithRecorder(trail))
	if err := intake.Requeue(pending); err != nil {
		return fmt.Errorf("queueing alerts accepted before a restart: %w", err)
	}
	if len(pending) > 0 {
		logger.Info("resuming alerts accepted before a restart", zap.Int("alerts", len(pending)))
	}
	workers := remediate.NewWorkers(queue, engine, cfg.Queue.Workers, logger)
	srv := handler.New(handler.Options{
		WebhookPath: cfg.Webhook.Path,
		Settings:    settings,
		Intake:      intake,
		Registry:    reg,
		Logger:      logger.Named("handler"),
		Receipts:    trail,
	})
	rl := newReloader(f, cfg, engine, srv, reg, logger)
	srv.EnablePlan(engine)
	srv.EnableReload(rl.reload)
	srv.EnablePause(engine)
	stopReloads := rl.onSIGHUP()
	defer stopReloads()

	return listenAndServe(ctx, cfg, f.listenAddress, srv, workers, logger)
}

// loadSettings makes sure a credential exists and reads it.
func loadSettings(cfg *config.Config, storage string, logger *zap.Logger) (handler.Settings, error) {
	if err := ensureCredential(cfg, storage, logger); err != nil {
		return handler.Settings{}, err
	}
	auth, err := handler.NewAuthenticator(cfg.Webhook.Auth, cfg.TLS, cfg.Resolve)
	if err != nil {
		return handler.Settings{}, err
	}
	return settingsFrom(cfg, auth), nil
}

func settingsFrom(cfg *config.Config, auth *handler.Authenticator) handler.Settings {
	return handler.Settings{
		Auth:        auth,
		MaxBodySize: int64(cfg.Webhook.MaxBodySize),
		RetryAfter:  cfg.Queue.RetryAfter.Std(),
	}
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("remediator"),
	)
	return reg
}

// ensureCredential makes sure the webhook cannot be called anonymously by accident: with
// no credential configured, it generates a bearer token in the storage directory once and
// uses it from then on.
func ensureCredential(cfg *config.Config, storage string, logger *zap.Logger) error {
	if cfg.Authenticates() || cfg.Webhook.Auth.AllowUnauthenticated {
		return nil
	}
	path, err := filepath.Abs(filepath.Join(storage, generatedTokenFile))
	if err != nil {
		return fmt.Errorf("locating generated token: %w", err)
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := writeToken(path); err != nil {
			return err
		}
		logger.Info("no webhook credential configured; generated a bearer token", zap.String("token_file", path))
	}
	cfg.Webhook.Auth.BearerTokenFile = path
	return nil
}

func writeToken(path string) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("generating token: %w", err)
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return fmt.Errorf("writing generated token: %w", err)
	}
	return nil
}

func listenAndServe(ctx context.Context, cfg *config.Config, addr string, srv *handler.Server,
	workers *remediate.Workers, logger *zap.Logger) error {
	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // plans run read-only steps for real
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(logger.Named("http")),
	}

	workers.Start()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	srv.SetReady(true)
	logger.Info("listening", zap.String("address", ln.Addr().String()), zap.Bool("tls", tlsConfig != nil),
		zap.String("mode", string(cfg.Mode)), zap.String("webhook_path", cfg.Webhook.Path),
		zap.String("version", version.Version))

	select {
	case err := <-errc:
		workers.Stop(context.Background())
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	return shutdown(cfg.ShutdownGracePeriod.Std(), hs, srv, workers, logger)
}

// shutdown stops accepting, lets in-flight requests finish, then drains the queue, all
// within the grace period.
func shutdown(grace time.Duration, hs *http.Server, srv *handler.Server, workers *remediate.Workers,
	logger *zap.Logger) error {
	logger.Info("shutting down", zap.Duration("grace_period", grace))
	srv.SetReady(false)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()

	if err := hs.Shutdown(ctx); err != nil {
		logger.Warn("requests still in flight at the end of the grace period", zap.Error(err))
	}
	if left := workers.Stop(ctx); len(left) > 0 {
		logger.Warn("grace period over; unhandled alerts stay in the intake for the next start",
			zap.Int("alerts", len(left)))
	}
	logger.Info("stopped")
	return nil
}

func serverTLS(cfg *config.Config) (*tls.Config, error) {
	t := cfg.TLS
	if t == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.Resolve(t.CertFile), cfg.Resolve(t.KeyFile))
	if err != nil {
		return nil, fmt.Errorf("loading tls.cert_file and tls.key_file: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(cfg.Resolve(t.ClientCAFile))
	if err != nil {
		return nil, fmt.Errorf("reading tls.client_ca_file: %w", err)
	}
	tc.ClientCAs = x509.NewCertPool()
	if !tc.ClientCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("reading tls.client_ca_file: no PEM certificate in %s", t.ClientCAFile)
	}
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	if t.ClientAuth == config.ClientAuthRequireAndVerify {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// decodeStored turns a notification the intake stored back into its alerts.
func decodeStored(body []byte, receivedAt time.Time) ([]remediate.Alert, error) {
	n, err := handler.DecodeNotification(body)
	if err != nil {
		return nil, err
	}
	return n.Split(receivedAt), nil
}

// setMemoryLimit applies --memory.limit unless GOMEMLIMIT is set. The limit is soft:
// the garbage collector works harder near it, and the process may still go past it.
func setMemoryLimit(limit string) error {
	if os.Getenv("GOMEMLIMIT") != "" || limit == "0" {
		return nil
	}
	n, err := units.ParseBase2Bytes(limit)
	if err != nil {
		return fmt.Errorf("%q: %w", limit, err)
	}
	debug.SetMemoryLimit(int64(n))
	return nil
}
