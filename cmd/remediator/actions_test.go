package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/remediator/remediator/remediate/actions"
)

// TestActionsReferenceIsCurrent keeps docs/actions.md equal to what the actions declare:
// after changing an action, run `go run ./cmd/remediator actions > docs/actions.md`.
func TestActionsReferenceIsCurrent(t *testing.T) {
	var want bytes.Buffer
	writeActionsReference(&want, actions.Builtin(actions.Deps{}))
	got, err := os.ReadFile("../../docs/actions.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Error("docs/actions.md is stale: run go run ./cmd/remediator actions > docs/actions.md")
	}
}
