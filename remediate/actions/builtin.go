package actions

// Deps are what the built-in actions need from outside.
type Deps struct {
	// Alertmanager receives escalations.
	Alertmanager *Alertmanager
}

// Builtin returns the registry of every action remediator ships.
func Builtin(d Deps) Registry {
	return NewRegistry(
		NewTLSProbe(),
		NewEscalate(d.Alertmanager),
	)
}
