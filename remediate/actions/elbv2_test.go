package actions

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/remediator/remediator/internal/testpeer"
)

func TestListenerCertificateAgainstMoto(t *testing.T) {
	a, _, cfg := motoAWS(t)
	old, _ := testpeer.SeedCertificate(t, cfg, "*.example.test", "example.test")
	current, _ := testpeer.SeedCertificate(t, cfg, "*.example.test", "example.test")
	listener := testpeer.SeedNetworkLoadBalancer(t, cfg, "cabal-nlb", 993, old)

	tests := []struct {
		name          string
		p             Params
		current, list bool
	}{
		{"a listener pinned to an older ARN is not current",
			Params{"load_balancer": "cabal-nlb", "port": int64(993), "expected_arn": current}, false, false},
		{"a listener serving the expected ARN is current",
			Params{"load_balancer": "cabal-nlb", "port": int64(993), "expected_arn": old}, true, true},
		{"a listener given by ARN",
			Params{"listener_arn": listener, "expected_arn": old}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := mustRun(t, NewELBv2ListenerCertificate(a), tt.p)
			if facts["serving_arn"] != old || facts["listener_arn"] != listener || facts["protocol"] != "TLS" {
				t.Errorf("facts %v, want listener %s serving %s over TLS", facts, listener, old)
			}
			if facts["current"] != tt.current || facts["listed"] != tt.list {
				t.Errorf("current %v, listed %v; want %v, %v", facts["current"], facts["listed"], tt.current, tt.list)
			}
			if !reflect.DeepEqual(facts["certificate_arns"], []string{old}) {
				t.Errorf("certificate_arns = %v, want [%s]", facts["certificate_arns"], old)
			}
		})
	}
}

func TestListenerCertificateOfAMissingListenerIsNotFound(t *testing.T) {
	a, _, cfg := motoAWS(t)
	cert, _ := testpeer.SeedCertificate(t, cfg, "*.example.test")
	testpeer.SeedNetworkLoadBalancer(t, cfg, "cabal-nlb", 993, cert)

	tests := []struct {
		name string
		p    Params
		want string
	}{
		{"no load balancer of that name", Params{"load_balancer": "other-nlb", "port": int64(993)},
			"describing load balancer other-nlb"},
		{"no listener on that port", Params{"load_balancer": "cabal-nlb", "port": int64(995)},
			"finding the listener of cabal-nlb on port 995: none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p["expected_arn"] = cert
			_, err := runAction(t, NewELBv2ListenerCertificate(a), tt.p)
			if reasonOf(err) != ReasonNotFound || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want not_found: %s", err, tt.want)
			}
		})
	}
}

func TestSetListenerCertificateRequestIsTheExactModifyListener(t *testing.T) {
	s := NewELBv2SetListenerCertificate(NewAWS(AWSOptions{}))
	req, err := s.Request(Params{"listener_arn": "arn:listener", "certificate_arn": "arn:cert"}, testEnv())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(req)
	want := `{"service":"elasticloadbalancing","operation":"ModifyListener","input":` +
		`{"Certificates":[{"CertificateArn":"arn:cert"}],"ListenerArn":"arn:listener"}}`
	if string(got) != want {
		t.Errorf("request %s, want %s", got, want)
	}
}

func TestSetListenerCertificateIsCalledOnce(t *testing.T) {
	a, calls, cfg := motoAWS(t)
	old, _ := testpeer.SeedCertificate(t, cfg, "*.example.test")
	current, _ := testpeer.SeedCertificate(t, cfg, "*.example.test")
	listener := testpeer.SeedNetworkLoadBalancer(t, cfg, "cabal-nlb", 993, old)

	facts := mustRun(t, NewELBv2SetListenerCertificate(a),
		Params{"listener_arn": listener, "certificate_arn": current})

	if got := calls.Attempts(); !reflect.DeepEqual(got, []string{"Elastic Load Balancing v2/ModifyListener"}) {
		t.Errorf("attempts %v, want one ModifyListener", got)
	}
	// moto ignores ModifyListener on a TLS listener, so it answers with the old
	// certificate; AWS answers with the new one
	if facts["serving_arn"] != current && facts["serving_arn"] != old {
		t.Errorf("serving_arn = %v, want one of the two certificates", facts["serving_arn"])
	}
}

func TestSetListenerCertificateIsNotRetriedWhenThrottled(t *testing.T) {
	log := &requestLog{}
	a, calls := fakeAWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		awsErrorXML(w, http.StatusBadRequest, "Throttling")
	}))

	_, err := runAction(t, NewELBv2SetListenerCertificate(a),
		Params{"listener_arn": "arn:l", "certificate_arn": "arn:c"})
	if reasonOf(err) != ReasonThrottled {
		t.Fatalf("err = %v, want throttled", err)
	}
	if got, seen := calls.Attempts(), log.requests(); len(got) != 1 || len(seen) != 1 {
		t.Errorf("attempts %v, server saw %v; want one of each", got, seen)
	}
}
