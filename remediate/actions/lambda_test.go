package actions

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/remediator/remediator/internal/testpeer"
)

const certbotFunction = "cabal-certbot-renewal"

func TestLambdaInvokeRefusesParametersThatCannotWork(t *testing.T) {
	tests := []struct {
		name   string
		params Params
		want   string
	}{
		{"no function", Params{"function": " "}, "function: required"},
		{"an unknown invocation type", Params{"function": "f", "invocation_type": "DryRun"},
			`invocation_type "DryRun": must be RequestResponse or Event`},
		{"a payload that is not JSON", Params{"function": "f", "payload": "{renew"}, "payload: not a JSON document"},
		{"a timeout past Lambda's longest", Params{"function": "f", "timeout": 20 * time.Minute},
			"timeout 20m0s: must be positive and at most 16m0s"},
	}
	action := NewLambdaInvoke(NewAWS(AWSOptions{}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := action.Request(withDefaults(action, tt.params), testEnv())
			if reasonOf(err) != ReasonInvalid || err.Error() != tt.want {
				t.Fatalf("err = %v, want invalid %q", err, tt.want)
			}
		})
	}
}

func TestLambdaInvokeRequestIsTheExactInvocation(t *testing.T) {
	action := NewLambdaInvoke(NewAWS(AWSOptions{}))
	tests := []struct {
		name   string
		params Params
		want   string
	}{
		{"a synchronous call asks for the log tail", Params{"function": certbotFunction,
			"payload": `{"domain": "example.test"}`},
			`{"FunctionName":"cabal-certbot-renewal","InvocationType":"RequestResponse","LogType":"Tail",` +
				`"Payload":{"domain":"example.test"}}`},
		{"an asynchronous call does not", Params{"function": certbotFunction, "invocation_type": "Event",
			"qualifier": "live", "region": "eu-west-1"},
			`{"FunctionName":"cabal-certbot-renewal","InvocationType":"Event","Qualifier":"live",` +
				`"Payload":{},"Region":"eu-west-1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := action.Request(withDefaults(action, tt.params), testEnv())
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(req.Input)
			if req.Service != "lambda" || req.Operation != "Invoke" || string(got) != tt.want {
				t.Errorf("request %s %s %s\nwant input %s", req.Service, req.Operation, got, tt.want)
			}
		})
	}
}

// fakeLambda plays Lambda's REST protocol for Invoke: each invocation gets the answer
// respond writes.
func fakeLambda(t *testing.T, respond func(w http.ResponseWriter, r *http.Request),
) (*AWS, *testpeer.AWSCalls, *requestLog) {
	t.Helper()
	log := &requestLog{}
	a, calls := fakeAWS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/invocations") {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		// reading the body lets the server see the client go away
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Amzn-Requestid", "req-1")
		respond(w, r)
	}))
	return a, calls, log
}

func lambdaError(w http.ResponseWriter, status int, typ string) {
	w.Header().Set("X-Amzn-Errortype", typ)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"Type":"User","message":"%s"}`, typ)
}

func TestLambdaInvokeAgainstTheLambdaProtocol(t *testing.T) {
	tail := strings.Repeat("certbot: renewing\n", 300) + "END RequestId: req-1\n"
	tests := []struct {
		name    string
		params  Params
		respond func(w http.ResponseWriter, r *http.Request)
		reason  string // the step error's reason; empty for success
		errText string
		check   func(t *testing.T, f Facts)
	}{
		{
			name: "a result comes back with its decoded log tail, cut to its last 4 KiB",
			respond: func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Amz-Log-Type") != "Tail" ||
					r.Header.Get("X-Amz-Invocation-Type") != "RequestResponse" {
					t.Errorf("headers %v, want a synchronous call asking for the tail", r.Header)
				}
				w.Header().Set("X-Amz-Log-Result", base64.StdEncoding.EncodeToString([]byte(tail)))
				_, _ = w.Write([]byte(`{"renewed": true}`))
			},
			check: func(t *testing.T, f Facts) {
				logTail := f["log_tail"].(string)
				if f["payload"] != `{"renewed": true}` || f["status_code"] != int64(200) ||
					f["request_id"] != "req-1" ||
					f["function_error"] != "" || !strings.HasSuffix(logTail, "END RequestId: req-1\n") ||
					len(logTail) > lambdaFactBytes+len("…") || !strings.HasPrefix(logTail, "…") {
					t.Errorf("facts %v", f)
				}
			},
		},
		{
			name: "a function error fails the step with its type and message",
			respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("X-Amz-Function-Error", "Unhandled")
				_, _ = w.Write([]byte(`{"errorType":"RateLimited",` +
					`"errorMessage":"urn:ietf:params:acme:error:rateLimited"}`))
			},
			reason: ReasonFailed,
			errText: "function cabal-certbot-renewal failed (Unhandled, request req-1): " +
				"RateLimited: urn:ietf:params:acme:error:rateLimited",
		},
		{
			name:   "a function error is a fact when the step is told not to fail",
			params: Params{"fail_on_function_error": false},
			respond: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("X-Amz-Function-Error", "Handled")
				_, _ = w.Write([]byte(`{"errorMessage":"no renewal due"}`))
			},
			check: func(t *testing.T, f Facts) {
				if f["function_error"] != "Handled" || f["payload"] != `{"errorMessage":"no renewal due"}` {
					t.Errorf("facts %v", f)
				}
			},
		},
		{
			name: "a huge result is cut to its first 4 KiB without splitting a character",
			respond: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(`"` + strings.Repeat("é", 5000) + `"`))
			},
			check: func(t *testing.T, f Facts) {
				p := f["payload"].(string)
				if !utf8.ValidString(p) || len(p) > lambdaFactBytes+len("…") || !strings.HasSuffix(p, "…") {
					t.Errorf("payload of %d bytes, valid UTF-8 %v", len(p), utf8.ValidString(p))
				}
			},
		},
		{
			name:   "an asynchronous call is accepted without waiting",
			params: Params{"invocation_type": "Event"},
			respond: func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Amz-Invocation-Type") != "Event" || r.Header.Get("X-Amz-Log-Type") != "" {
					t.Errorf("headers %v, want an Event call without a log tail", r.Header)
				}
				w.WriteHeader(http.StatusAccepted)
			},
			check: func(t *testing.T, f Facts) {
				if f["status_code"] != int64(202) || f["payload"] != "" || f["log_tail"] != "" {
					t.Errorf("facts %v", f)
				}
			},
		},
		{
			name: "throttling is not retried",
			respond: func(w http.ResponseWriter, _ *http.Request) {
				lambdaError(w, http.StatusTooManyRequests, "TooManyRequestsException")
			},
			reason: ReasonThrottled, errText: "invoking function cabal-certbot-renewal: ",
		},
		{
			name: "a server fault is not retried",
			respond: func(w http.ResponseWriter, _ *http.Request) {
				lambdaError(w, http.StatusInternalServerError, "ServiceException")
			},
			reason: ReasonUnavailable, errText: "invoking function cabal-certbot-renewal: ",
		},
		{
			name: "a missing function is not found",
			respond: func(w http.ResponseWriter, _ *http.Request) {
				lambdaError(w, http.StatusNotFound, "ResourceNotFoundException")
			},
			reason: ReasonNotFound, errText: "invoking function cabal-certbot-renewal: ",
		},
		{
			name:   "no answer within the timeout is a timeout, the function perhaps still running",
			params: Params{"timeout": 200 * time.Millisecond},
			respond: func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
			},
			reason: ReasonTimeout,
			errText: "invoking function cabal-certbot-renewal: no answer within 200ms; " +
				"the function may still be running",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, calls, log := fakeLambda(t, tt.respond)
			params := Params{"function": certbotFunction}
			for k, v := range tt.params {
				params[k] = v
			}

			facts, err := runAction(t, NewLambdaInvoke(a), params)
			if got := calls.Attempts(); !slices.Equal(got, []string{"Lambda/Invoke"}) {
				t.Errorf("attempts %v, want exactly one Invoke", got)
			}
			if n := len(log.requests()); n != 1 {
				t.Errorf("the service saw %d requests, want 1", n)
			}
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				tt.check(t, facts)
				return
			}
			if reasonOf(err) != tt.reason || !strings.HasPrefix(err.Error(), tt.errText) {
				t.Fatalf("err = %v (reason %q), want %s starting %q", err, reasonOf(err), tt.reason, tt.errText)
			}
		})
	}
}

// moto's Lambda in simple mode runs nothing: Invoke echoes the payload or answers with
// results queued beforehand, gives no log tail, and never reports a function error
// (TestLambdaInvokeAgainstTheLambdaProtocol covers those). It also answers for functions
// that do not exist.
func TestLambdaInvokeAgainstMoto(t *testing.T) {
	a, calls, cfg := motoAWS(t)
	endpoint := os.Getenv("AWS_ENDPOINT_URL")
	testpeer.UseLambdaSimple(t, endpoint)
	testpeer.SeedLambdaFunction(t, cfg, certbotFunction)
	action := NewLambdaInvoke(a)

	facts := mustRun(t, action, Params{"function": certbotFunction, "payload": `{"domain":"example.test"}`})
	if facts["payload"] != `{"domain":"example.test"}` || facts["status_code"] != int64(200) {
		t.Errorf("echoed facts %v", facts)
	}
	wantFactsAsDeclared(t, action, facts)

	testpeer.QueueLambdaResults(t, endpoint, `{"renewed":"*.example.test"}`)
	facts = mustRun(t, action, Params{"function": certbotFunction})
	if facts["payload"] != `{"renewed":"*.example.test"}` {
		t.Errorf("queued result gave facts %v", facts)
	}

	facts = mustRun(t, action, Params{"function": certbotFunction, "invocation_type": "Event"})
	if facts["status_code"] != int64(202) {
		t.Errorf("event facts %v", facts)
	}
	// AWS answers ResourceNotFoundException, classified not_found against the protocol
	if _, err := runAction(t, action, Params{"function": "cabal-no-such-function"}); err != nil {
		t.Logf("moto now refuses a missing function (%v): the comment above is out of date", err)
	}
	if got := calls.Attempts(); testpeer.Count(got, "Lambda") != 4 {
		t.Errorf("attempts %v, want four Invoke calls", got)
	}
}

func TestUTF8CutsKeepWholeCharacters(t *testing.T) {
	tests := []struct {
		name       string
		s          string
		n          int
		head, tail string
	}{
		{"a short string is whole", "abc", 3, "abc", "abc"},
		{"a cut inside a character moves to its edge", "aéb", 2, "a…", "…b"},
		{"ascii is cut exactly", "abcdef", 4, "abcd…", "…cdef"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := headUTF8(tt.s, tt.n); got != tt.head {
				t.Errorf("headUTF8 = %q, want %q", got, tt.head)
			}
			if got := tailUTF8(tt.s, tt.n); got != tt.tail {
				t.Errorf("tailUTF8 = %q, want %q", got, tt.tail)
			}
		})
	}
}

// FuzzLambdaAnswer feeds what a function can answer: its error payload and log tail
// never make facts or errors longer than their caps.
func FuzzLambdaAnswer(f *testing.F) {
	f.Add([]byte(`{"errorType":"E","errorMessage":"m"}`), base64.StdEncoding.EncodeToString([]byte("START\nEND\n")))
	f.Add([]byte(`"`+strings.Repeat("é", 600)+`"`), "not base64!")
	f.Fuzz(func(t *testing.T, payload []byte, tail string) {
		if msg := functionErrorMessage(payload); len(msg) > lambdaErrorBytes+len("…") {
			t.Errorf("error message of %d bytes", len(msg))
		}
		if got := decodeLogTail(tail); len(got) > lambdaFactBytes+len("…") {
			t.Errorf("log tail of %d bytes", len(got))
		}
		if got := headUTF8(string(payload), lambdaFactBytes); utf8.Valid(payload) && !utf8.ValidString(got) {
			t.Errorf("cutting valid UTF-8 gave invalid UTF-8")
		}
	})
}
