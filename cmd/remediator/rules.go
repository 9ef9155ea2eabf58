package main

import (
	"fmt"

	"github.com/remediator/remediator/config"
	"github.com/remediator/remediator/policies"
	"github.com/remediator/remediator/remediate"
	"github.com/remediator/remediator/remediate/actions"
)

// loadRules builds the actions the configuration allows and loads its policies.
func loadRules(cfg *config.Config) (*remediate.Rules, error) {
	am, err := actions.NewAlertmanager(cfg.Alertmanager.URL, cfg.Resolve(cfg.Alertmanager.BearerTokenFile),
		cfg.Alertmanager.Timeout.Std())
	if err != nil {
		return nil, err
	}
	// the AWS configuration loads on the first AWS call: check, and policies without
	// AWS steps, never need credentials
	reg := actions.Builtin(actions.Deps{Alertmanager: am, AWS: actions.NewAWS(actions.AWSOptions{})})
	set := &policies.Set{}
	if len(cfg.PolicyFiles) > 0 {
		set, err = policies.Load(cfg.PolicyFiles, cfg.Dir(), reg)
		if err != nil {
			return nil, fmt.Errorf("loading policies:\n%w", err)
		}
	}
	return &remediate.Rules{Policies: set, Mode: cfg.Mode, Actions: reg, Alertmanager: am}, nil
}

// loadAll reads the main configuration and everything it names.
func loadAll(file string) (*config.Config, *remediate.Rules, error) {
	cfg, err := loadConfig(file)
	if err != nil {
		return nil, nil, fmt.Errorf("loading configuration:\n%w", err)
	}
	rules, err := loadRules(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, rules, nil
}
