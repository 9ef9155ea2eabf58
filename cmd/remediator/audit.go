package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/remediator/remediator/audit"
)

// defaultAuditDir is where serve keeps the audit log with the default --storage.path.
const defaultAuditDir = "data/audit"

// showTimeFormat is how audit show writes a record's time: UTC, to the millisecond.
const showTimeFormat = "2006-01-02T15:04:05.000Z"

func registerAudit(app *kingpin.Application, commands map[string]func(context.Context) int, stdout, stderr io.Writer) {
	cmd := app.Command("audit", "Verify and read the audit log.")
	registerAuditVerify(cmd, commands, stdout, stderr)
	registerAuditShow(cmd, commands, stdout, stderr)
}

func registerAuditVerify(parent *kingpin.CmdClause, commands map[string]func(context.Context) int,
	stdout, stderr io.Writer) {
	cmd := parent.Command("verify", "Prove that no audit record was changed, dropped, reordered or "+
		"truncated; exit 1 naming the first bad line otherwise.")
	paths := cmd.Arg("path", "Audit files, or directories whose audit files to verify.").
		Required().Strings()

	commands["audit verify"] = func(context.Context) int {
		res, err := verifyPaths(*paths)
		if err != nil {
			fmt.Fprintf(stderr, "FAILED: %s\n", err)
			return 1
		}
		writeVerified(stdout, res)
		return 0
	}
}

// verifyPaths verifies the audit files at paths, a directory standing for all of its own.
func verifyPaths(paths []string) (audit.Result, error) {
	files, err := auditFiles(paths)
	if err != nil {
		return audit.Result{}, err
	}
	return audit.Verify(files...)
}

// auditFiles expands the directories among paths into their audit files, each file
// once however often it is named.
func auditFiles(paths []string) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	add := func(p string) {
		if clean := filepath.Clean(p); !seen[clean] {
			seen[clean] = true
			files = append(files, p)
		}
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			add(p)
			continue
		}
		found, err := audit.Files(p)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("no audit files in %s", p)
		}
		for _, f := range found {
			add(f)
		}
	}
	return files, nil
}

func writeVerified(w io.Writer, res audit.Result) {
	fmt.Fprintf(w, "OK: %s in %s\n", auditCount(res.Records, "record"),
		auditCount(uint64(res.Files), "file"))
	if res.Records == 0 {
		return
	}
	fmt.Fprintf(w, "last record: seq %d, hash %s\n", res.LastSeq, res.LastHash)
	if res.StartsMidChain {
		fmt.Fprintf(w, "note: seq %d follows a record in no file given: "+
			"earlier files are missing\n", res.FirstSeq)
	}
}

// auditCount writes n nouns, in the singular for one.
func auditCount(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

type auditShowFlags struct {
	dir    string
	runID  string
	since  time.Duration
	output string
}

func registerAuditShow(parent *kingpin.CmdClause, commands map[string]func(context.Context) int,
	stdout, stderr io.Writer) {
	f := &auditShowFlags{}
	cmd := parent.Command("show", "Print audit records, oldest first.")
	cmd.Flag("dir", "Directory of the audit log.").Default(defaultAuditDir).StringVar(&f.dir)
	cmd.Flag("run", "Only the records of this run id.").StringVar(&f.runID)
	cmd.Flag("since", "Only the records of this last period, such as 24h. Default: all.").DurationVar(&f.since)
	cmd.Flag("output", "Output format: text, or json for the records' lines as written.").
		Default("text").EnumVar(&f.output, "text", "json")

	commands["audit show"] = func(context.Context) int {
		if err := showAudit(stdout, f, time.Now()); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
}

func showAudit(w io.Writer, f *auditShowFlags, now time.Time) error {
	filter := audit.Filter{RunID: f.runID}
	if f.since > 0 {
		filter.Since = now.Add(-f.since)
	}
	if _, err := os.Stat(f.dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no audit log in %s: %w", f.dir, err)
	}
	for e, err := range audit.Read(f.dir, filter) {
		if err != nil {
			return err
		}
		if err := writeEntry(w, e, f.output); err != nil {
			return err
		}
	}
	return nil
}

func writeEntry(w io.Writer, e audit.Entry, output string) error {
	if output == "json" {
		_, err := fmt.Fprintf(w, "%s\n", e.Line)
		return err
	}
	r := &e.Record
	step := r.Step
	if r.Action != "" {
		step = dash(r.Step) + "/" + r.Action
	}
	instance := ""
	if r.Alert != nil {
		instance = r.Alert.Instance
	}
	line := fmt.Sprintf("%s  %-9s  %s  %s  %s", r.Time.UTC().Format(showTimeFormat), r.Decision,
		dash(r.Policy), dash(step), dash(instance))
	if r.Reason != "" {
		line += "  " + r.Reason
	}
	if r.Error != "" {
		line += "  error: " + r.Error
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// dash stands in for an empty field, so that text columns stay aligned.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
