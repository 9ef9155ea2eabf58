package main

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/remediate"
)

// reloader re-reads the configuration and the policies on SIGHUP and POST /-/reload. A
// reload that fails changes nothing.
type reloader struct {
	flags   *serveFlags
	initial *config.Config
	engine  *remediate.Engine
	srv     *handler.Server
	logger  *zap.Logger

	mu          sync.Mutex
	successful  prometheus.Gauge
	successTime prometheus.Gauge
}

func newReloader(f *serveFlags, cfg *config.Config, engine *remediate.Engine, srv *handler.Server,
	reg prometheus.Registerer, logger *zap.Logger) *reloader {
	r := &reloader{
		flags: f, initial: cfg, engine: engine, srv: srv, logger: logger,
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_config_last_reload_successful",
			Help: "Whether the last configuration reload succeeded (1) or failed (0).",
		}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "remediator_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration was last loaded successfully.",
		}),
	}
	reg.MustRegister(r.successful, r.successTime)
	r.successful.Set(1)
	r.successTime.SetToCurrentTime()
	return r
}

func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()

	cfg, rules, err := loadAll(r.flags.configFile)
	if err == nil {
		var settings handler.Settings
		settings, err = loadSettings(cfg, r.flags.storagePath, r.logger)
		if err == nil {
			r.warnRestartOnly(cfg)
			r.engine.Reload(rules)
			r.srv.Update(settings)
		}
	}
	if err != nil {
		r.successful.Set(0)
		r.logger.Error("reload failed; the previous configuration stays", zap.Error(err))
		return err
	}
	r.successful.Set(1)
	r.successTime.Set(float64(time.Now().Unix()))
	r.logger.Info("configuration reloaded", zap.String("mode", string(cfg.Mode)),
		zap.Int("policies", len(rules.Policies.Policies)))
	return nil
}

// warnRestartOnly says which changed settings only a restart applies.
func (r *reloader) warnRestartOnly(cfg *config.Config) {
	old := r.initial
	if cfg.Webhook.Path != old.Webhook.Path || cfg.Queue.Size != old.Queue.Size ||
		cfg.Queue.Workers != old.Queue.Workers || (cfg.TLS == nil) != (old.TLS == nil) {
		r.logger.Warn("webhook path, queue and TLS changes take effect at the next restart")
	}
}

// onSIGHUP reloads on every SIGHUP until the returned function is called.
func (r *reloader) onSIGHUP() func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				_ = r.reload()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
