// Package policies owns the policy language: the YAML schema, loading with every error
// placed at file, line and field path, Alertmanager matchers, the parsed instance label,
// CEL conditions and Go templates checked at load against what each action declares.
// It also ships the policy packs, as YAML files beside the code. It runs nothing: the
// remediate package executes what a policy says.
package policies
