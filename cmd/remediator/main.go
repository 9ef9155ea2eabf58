// Command remediator receives Alertmanager webhook notifications and runs the
// remediation policies that match them.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
)

func init() {
	if version.Version == "" {
		version.Version = buildVersion()
	}
}

// buildVersion is the module version go install stamped, for builds made without the
// release flags.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args and runs the chosen command, returning the process's exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("remediator", "Runs guarded remediation policies for Alertmanager alerts.")
	app.Version(version.Print("remediator"))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	exited := false
	app.Terminate(func(int) { exited = true })

	commands := map[string]func(context.Context) int{}
	registerServe(app, commands, stdout, stderr)
	registerCheck(app, commands, stdout, stderr)
	registerPlan(app, commands, stdout, stderr)
	registerAudit(app, commands, stdout, stderr)
	registerPause(app, commands, stdout, stderr)
	registerHealthcheck(app, commands, stderr)
	registerActions(app, commands, stdout)
	registerIAMPolicy(app, commands, stdout, stderr)
	registerVersion(app, commands, stdout)

	cmd, err := app.Parse(args)
	switch {
	case exited:
		// --help or --version printed already
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "remediator: %s\n", err)
		return 2
	}
	return commands[cmd](ctx)
}

func registerVersion(app *kingpin.Application, commands map[string]func(context.Context) int, stdout io.Writer) {
	app.Command("version", "Print the version and build information.")
	commands["version"] = func(context.Context) int {
		fmt.Fprintln(stdout, version.Print("remediator"))
		return 0
	}
}
