package actions

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/testpeer"
)

const mailCluster = "cabal-mail"

var mailServices = []string{"cabal-smtp-out", "cabal-smtp-in", "cabal-imap"}

func TestECSForceNewDeploymentRefusesParametersThatCannotWork(t *testing.T) {
	eleven := make([]string, 11)
	for i := range eleven {
		eleven[i] = string(rune('a' + i))
	}
	tests := []struct {
		name   string
		params Params
		want   string
	}{
		{"no cluster", Params{"services": mailServices}, "cluster: required"},
		{"no service", Params{"cluster": mailCluster, "services": []string{""}},
			"services: at least one service is required"},
		{"more services than DescribeServices takes", Params{"cluster": mailCluster, "services": eleven},
			"services: 11 given, at most 10"},
	}
	action := NewECSForceNewDeployment(NewAWS(AWSOptions{}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := action.Request(withDefaults(action, tt.params), testEnv())
			if reasonOf(err) != ReasonInvalid || err.Error() != tt.want {
				t.Fatalf("err = %v, want invalid %q", err, tt.want)
			}
		})
	}
}

func TestECSForceNewDeploymentRequestIsOneUpdatePerService(t *testing.T) {
	action := NewECSForceNewDeployment(NewAWS(AWSOptions{}))
	req, err := action.Request(withDefaults(action, Params{"cluster": mailCluster,
		"services": []string{"cabal-smtp-out", "cabal-imap", "cabal-smtp-out"}}), testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(req)
	want := `{"service":"ecs","operation":"UpdateService","input":[` +
		`{"Cluster":"cabal-mail","Service":"cabal-smtp-out","ForceNewDeployment":true},` +
		`{"Cluster":"cabal-mail","Service":"cabal-imap","ForceNewDeployment":true}]}`
	if string(got) != want {
		t.Errorf("request %s\nwant    %s", got, want)
	}
}

// moto replaces a service's deployment on ForceNewDeployment, where ECS adds a new
// primary one and drains the old; and it runs no task, so that only a service of
// desired count 0 is ever stable.
func TestECSForceNewDeploymentAgainstMoto(t *testing.T) {
	tests := []struct {
		name     string
		desired  int32
		services []string
		params   Params
		stable   bool
		unstable []string
		errText  string
	}{
		{name: "every service gets one new deployment and is seen stable", desired: 0,
			services: mailServices, params: Params{"wait": true}, stable: true, unstable: []string{}},
		{name: "without wait nothing is known to be stable", desired: 0,
			services: mailServices, stable: false, unstable: mailServices},
		{name: "services that never reach their count are unstable when the wait ends", desired: 2,
			services: mailServices[:2], params: Params{"wait": true, "wait_timeout": 300 * time.Millisecond},
			stable: false, unstable: mailServices[:2]},
		{name: "a missing service fails the step after the others were restarted", desired: 0,
			services: []string{"cabal-smtp-out", "cabal-webmail", "cabal-imap"},
			errText:  "forcing new deployments in cluster cabal-mail: cabal-smtp-out: new deployment ecs-svc/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, calls, cfg := motoAWS(t)
			testpeer.SeedECSServices(t, cfg, mailCluster, tt.desired, mailServices...)
			before := testpeer.Deployments(t, cfg, mailCluster, mailServices...)
			action := &ecsForceNewDeployment{aws: a, pollDelay: 20 * time.Millisecond}
			params := Params{"cluster": mailCluster, "services": tt.services}
			for k, v := range tt.params {
				params[k] = v
			}

			facts, err := runAction(t, action, params)
			attempts := calls.Attempts()
			updates := slices.DeleteFunc(slices.Clone(attempts),
				func(c string) bool { return c != "ECS/UpdateService" })
			if len(updates) != len(tt.services) {
				t.Errorf("attempts %v, want one UpdateService per service", attempts)
			}
			after := testpeer.Deployments(t, cfg, mailCluster, mailServices...)
			for _, svc := range mailServices {
				if moved := before[svc] != after[svc]; moved != slices.Contains(tt.services, svc) {
					t.Errorf("deployment of %s went from %s to %s", svc, before[svc], after[svc])
				}
			}
			if tt.errText != "" {
				if reasonOf(err) != ReasonNotFound || !strings.HasPrefix(err.Error(), tt.errText) ||
					!strings.Contains(err.Error(), "cabal-webmail: updating service cabal-webmail") ||
					!strings.Contains(err.Error(), "cabal-imap: new deployment ecs-svc/") {
					t.Fatalf("err = %v, want not_found naming each service's outcome", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			wantFactsAsDeclared(t, action, facts)
			wantIDs := make([]string, len(tt.services))
			for i, svc := range tt.services {
				wantIDs[i] = after[svc]
			}
			if !slices.Equal(facts["deployment_ids"].([]string), wantIDs) || facts["stable"] != tt.stable ||
				!slices.Equal(facts["unstable"].([]string), tt.unstable) {
				t.Errorf("facts %v, want deployments %v, stable %v, unstable %v",
					facts, wantIDs, tt.stable, tt.unstable)
			}
		})
	}
}

func TestECSForceNewDeploymentIsNotRetried(t *testing.T) {
	log := &requestLog{}
	a, calls := fakeAWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"__type":"ThrottlingException","message":"Rate exceeded"}`))
	}))
	_, err := runAction(t, NewECSForceNewDeployment(a), Params{"cluster": mailCluster,
		"services": []string{"cabal-smtp-out"}, "wait": true})
	if reasonOf(err) != ReasonThrottled {
		t.Fatalf("err = %v, want throttled", err)
	}
	if got := calls.Attempts(); !slices.Equal(got, []string{"ECS/UpdateService"}) {
		t.Errorf("attempts %v, want one UpdateService and no wait", got)
	}
}
