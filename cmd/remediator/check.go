package main

import (
	"context"
	"fmt"
	"io"

	"github.com/alecthomas/kingpin/v2"
)

func registerCheck(app *kingpin.Application, commands map[string]func(context.Context) int, stdout, stderr io.Writer) {
	cmd := app.Command("check", "Validate the main configuration and every policy; exit 1 on any problem.")
	file := cmd.Flag("config.file", "Main configuration file.").Required().String()

	commands["check"] = func(context.Context) int {
		cfg, rules, err := loadAll(*file)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: OK, mode %s, %s in %s\n", *file, cfg.Mode,
			plural(len(rules.Policies.Policies), "policy", "policies"),
			plural(len(rules.Policies.Files), "file", "files"))
		for _, p := range rules.Policies.Policies {
			fmt.Fprintf(stdout, "  %s (%s:%d): %d steps, mode %s\n", p.Name, p.File, p.Line, len(p.Steps),
				p.EffectiveMode(cfg.Mode))
		}
		return 0
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
