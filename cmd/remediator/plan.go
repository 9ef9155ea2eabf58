package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/remediator/remediator/handler"
	"github.com/remediator/remediator/remediate"
)

func registerPlan(app *kingpin.Application, commands map[string]func(context.Context) int, stdout, stderr io.Writer) {
	cmd := app.Command("plan", "Show what the policies would do for alerts, running only read-only steps.")
	file := cmd.Flag("config.file", "Main configuration file.").Required().String()
	alertsFile := cmd.Flag("alerts", "A webhook body, or a JSON list of alerts; - for standard input.").
		Required().String()
	output := cmd.Flag("output", "Output format: text or json.").Default("text").Enum("text", "json")
	logLevel := cmd.Flag("log.level", "Log level of messages on standard error.").Default("warn").String()

	commands["plan"] = func(ctx context.Context) int {
		plans, err := plan(ctx, *file, *alertsFile, *logLevel, stderr)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if *output == "json" {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(plans)
		} else {
			err = remediate.WritePlanText(stdout, plans)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
}

func plan(ctx context.Context, file, alertsFile, logLevel string, stderr io.Writer) ([]*remediate.AlertPlan, error) {
	logger, err := newLogger(logLevel, "console", stderr)
	if err != nil {
		return nil, err
	}
	_, rules, err := loadAll(file)
	if err != nil {
		return nil, err
	}
	body, err := readInput(alertsFile)
	if err != nil {
		return nil, fmt.Errorf("reading --alerts: %w", err)
	}
	alerts, err := handler.DecodeAlerts(body, time.Now())
	if err != nil {
		return nil, fmt.Errorf("reading --alerts: %w", err)
	}
	engine := remediate.NewEngine(rules, prometheus.NewRegistry(), logger.Named("remediate"))
	return engine.Plan(ctx, alerts), nil
}

func readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	}
	return os.ReadFile(name)
}
