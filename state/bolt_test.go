package state_test

import (
	"testing"

	"github.com/remediator/remediator/state"
	"github.com/remediator/remediator/state/statetest"
)

func TestBoltConformance(t *testing.T) {
	var dir string
	open := func(t *testing.T, c *statetest.Clock) state.Store {
		s, err := state.OpenBolt(dir, state.BoltOptions{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	statetest.Run(t, statetest.Opener{
		Open: func(t *testing.T, c *statetest.Clock) state.Store {
			dir = t.TempDir()
			return open(t, c)
		},
		Reopen: open,
	})
}

func TestBoltRefusesASecondProcess(t *testing.T) {
	dir := t.TempDir()
	s, err := state.OpenBolt(dir, state.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := state.OpenBolt(dir, state.BoltOptions{}); err == nil {
		t.Fatal("a second writer opened the store")
	}
}

func TestMemoryConformance(t *testing.T) {
	statetest.Run(t, statetest.Opener{
		Open: func(t *testing.T, c *statetest.Clock) state.Store { return state.NewMemory(c.Now) },
	})
}
