package actions

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"go.uber.org/zap"
)

const (
	invokeRequestResponse = "RequestResponse"
	invokeEvent           = "Event"
	// defaultInvokeTimeout covers a function with Lambda's common long timeout, 5m,
	// such as a certbot renewal, plus the time to reach it.
	defaultInvokeTimeout = 5*time.Minute + 30*time.Second
	// maxInvokeTimeout is Lambda's longest function timeout and a little more.
	maxInvokeTimeout = 16 * time.Minute
	// lambdaFactBytes caps the payload and log_tail facts: they go to the audit log.
	lambdaFactBytes = 4096
	// lambdaErrorBytes caps what a function error adds to the step's error.
	lambdaErrorBytes = 512
)

// Log keys of the Lambda action.
const (
	keyFunction   = "function"
	keyRequestID  = "request_id"
	keyStatusCode = "status_code"
)

// NewLambdaInvoke returns the lambda.invoke action, which invokes a function once.
func NewLambdaInvoke(a *AWS) Action { return &lambdaInvoke{aws: a} }

type lambdaInvoke struct{ aws *AWS }

// Spec declares lambda.invoke.
func (l *lambdaInvoke) Spec() Spec {
	return Spec{
		Name:    "lambda.invoke",
		Mutates: true,
		Doc: "Invokes a Lambda function once, synchronously (RequestResponse, the default: it " +
			"waits for the function's result and asks for the tail of its log) or " +
			"asynchronously (Event: Lambda queues the event and answers 202 at once). The call " +
			"is never retried, even on throttling or a timeout: a second invocation could " +
			"repeat what the first did, and the guards decide whether a later run may try " +
			"again. A function error fails the step with the function's error type and " +
			"message unless fail_on_function_error is false. A call that gets no answer within " +
			"timeout fails with reason timeout; the function may still be running.",
		Params: []Param{
			{Name: "function", Type: String, Required: true,
				Doc: "The function's name (cabal-certbot-renewal), ARN or partial ARN, optionally " +
					"with :version or :alias."},
			{Name: "payload", Type: String, Default: "{}",
				Doc: "The event, a JSON document; defaults to {}. Usually a template. It is " +
					"shown in plans and the audit log, so it must not carry secrets."},
			{Name: "invocation_type", Type: String, Default: invokeRequestResponse,
				Doc: "RequestResponse (the default) to wait for the result, or Event to queue " +
					"the invocation and return at once."},
			{Name: "qualifier", Type: String, Doc: "A version or alias to invoke."},
			{Name: "timeout", Type: Duration, Default: defaultInvokeTimeout,
				Doc: "How long to wait for the answer; defaults to 5m30s, enough for a function " +
					"with a 300 s timeout. At most 16m, past Lambda's longest function timeout."},
			{Name: "fail_on_function_error", Type: Bool, Default: true,
				Doc: "Whether a function error fails the step (the default). When false the " +
					"step succeeds and function_error says what went wrong."},
			regionParam(),
		},
		Facts: []Fact{
			{Name: "status_code", Type: Int,
				Doc: "The HTTP status of the invocation: 200 for RequestResponse, 202 for Event."},
			{Name: "function_error", Type: String,
				Doc: "Handled or Unhandled when the function failed, empty otherwise."},
			{Name: "payload", Type: String,
				Doc: "The function's result, cut to its first 4 KiB; empty for Event."},
			{Name: "log_tail", Type: String,
				Doc: "The last lines of the function's log (Lambda returns at most 4 KiB), " +
					"decoded; empty for Event."},
			{Name: "request_id", Type: String,
				Doc: "The invocation's request id, to find its log in CloudWatch Logs."},
		},
		IAM: []string{"lambda:InvokeFunction"},
	}
}

// invokeInput is Invoke's input as plans and the audit log show it.
type invokeInput struct {
	FunctionName   string          `json:"FunctionName"`
	InvocationType string          `json:"InvocationType"`
	LogType        string          `json:"LogType,omitempty"`
	Qualifier      string          `json:"Qualifier,omitempty"`
	Payload        json.RawMessage `json:"Payload"`
	Region         string          `json:"Region,omitempty"`
}

// lambdaCall is what a step asks for.
type lambdaCall struct {
	in         invokeInput
	timeout    time.Duration
	failOnFunc bool
}

func parseLambdaCall(p Params) (lambdaCall, error) {
	c := lambdaCall{timeout: p.Duration("timeout"), failOnFunc: p.Bool("fail_on_function_error")}
	c.in.FunctionName = strings.TrimSpace(p.String("function"))
	if c.in.FunctionName == "" {
		return lambdaCall{}, Invalid("function: required")
	}
	switch typ := p.String("invocation_type"); typ {
	case "", invokeRequestResponse:
		c.in.InvocationType, c.in.LogType = invokeRequestResponse, string(lambdatypes.LogTypeTail)
	case invokeEvent:
		c.in.InvocationType = invokeEvent
	default:
		return lambdaCall{}, Invalid("invocation_type %q: must be RequestResponse or Event", typ)
	}
	payload := strings.TrimSpace(p.String("payload"))
	if payload == "" {
		payload = "{}"
	}
	if !json.Valid([]byte(payload)) {
		return lambdaCall{}, Invalid("payload: not a JSON document")
	}
	c.in.Payload = json.RawMessage(payload)
	c.in.Qualifier, c.in.Region = strings.TrimSpace(p.String("qualifier")), p.String("region")
	if c.timeout == 0 {
		c.timeout = defaultInvokeTimeout
	}
	if c.timeout < 0 || c.timeout > maxInvokeTimeout {
		return lambdaCall{}, Invalid("timeout %s: must be positive and at most %s", c.timeout, maxInvokeTimeout)
	}
	return c, nil
}

// Request returns the exact invocation Run makes.
func (l *lambdaInvoke) Request(p Params, _ Env) (Request, error) {
	c, err := parseLambdaCall(p)
	if err != nil {
		return Request{}, err
	}
	return Request{Service: "lambda", Operation: "Invoke", Input: c.in}, nil
}

// Run invokes the function once and reports its answer.
func (l *lambdaInvoke) Run(ctx context.Context, p Params, env Env) (Facts, error) {
	c, err := parseLambdaCall(p)
	if err != nil {
		return nil, err
	}
	cfg, err := l.aws.regionalConfig(ctx, c.in.Region)
	if err != nil {
		return nil, err
	}

	out, err := l.invoke(ctx, lambda.NewFromConfig(cfg), c)
	if err != nil {
		return nil, err
	}

	facts := invokeFacts(out)
	envLogger(env).Info("function invoked", zap.String(keyFunction, c.in.FunctionName),
		zap.Int64(keyStatusCode, facts["status_code"].(int64)), zap.String(keyRequestID, facts["request_id"].(string)))
	if fe := aws.ToString(out.FunctionError); fe != "" && c.failOnFunc {
		return nil, &StepError{Reason: ReasonFailed, Err: fmt.Errorf("function %s failed (%s, request %s): %s",
			c.in.FunctionName, fe, facts["request_id"], functionErrorMessage(out.Payload))}
	}
	return facts, nil
}

// invoke makes the one call, with the SDK's retries off and bounded by the step's timeout.
func (l *lambdaInvoke) invoke(ctx context.Context, client *lambda.Client, c lambdaCall) (*lambda.InvokeOutput, error) {
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	in := &lambda.InvokeInput{
		FunctionName:   aws.String(c.in.FunctionName),
		InvocationType: lambdatypes.InvocationType(c.in.InvocationType),
		LogType:        lambdatypes.LogType(c.in.LogType),
		Payload:        c.in.Payload,
	}
	if c.in.Qualifier != "" {
		in.Qualifier = aws.String(c.in.Qualifier)
	}
	out, err := client.Invoke(callCtx, in, func(o *lambda.Options) {
		o.Retryer = singleShot(o.Retryer)
	})
	what := "invoking function " + c.in.FunctionName
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(callCtx.Err(), context.DeadlineExceeded):
		return nil, &StepError{Reason: ReasonTimeout, Err: fmt.Errorf("%s: no answer within %s; the "+
			"function may still be running: %w", what, c.timeout, err)}
	case err != nil:
		return nil, awsError(what, err)
	}
	return out, nil
}

func invokeFacts(out *lambda.InvokeOutput) Facts {
	requestID, _ := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata)
	return Facts{
		"status_code":    int64(out.StatusCode),
		"function_error": aws.ToString(out.FunctionError),
		"payload":        headUTF8(string(out.Payload), lambdaFactBytes),
		"log_tail":       decodeLogTail(aws.ToString(out.LogResult)),
		"request_id":     requestID,
	}
}

// decodeLogTail decodes the base64 log tail Lambda returns, keeping its last 4 KiB. A
// tail that does not decode is reported as such, never passed on raw.
func decodeLogTail(encoded string) string {
	if encoded == "" {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return "(the log tail Lambda returned is not base64)"
	}
	return tailUTF8(string(raw), lambdaFactBytes)
}

// functionErrorMessage extracts the error type and message of a function error's
// payload, {"errorType": ..., "errorMessage": ...}, cut short; any other payload is
// quoted, cut short.
func functionErrorMessage(payload []byte) string {
	var fe struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if err := json.Unmarshal(payload, &fe); err == nil && (fe.Type != "" || fe.Message != "") {
		msg := fe.Message
		if fe.Type != "" {
			msg = fe.Type + ": " + msg
		}
		return headUTF8(msg, lambdaErrorBytes)
	}
	if len(payload) == 0 {
		return "no error payload"
	}
	return headUTF8(strconv.Quote(string(payload[:min(len(payload), lambdaErrorBytes)])), lambdaErrorBytes)
}

// headUTF8 returns at most n bytes of s from its start, not splitting a character, with
// a mark when it was cut.
func headUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// tailUTF8 returns at most n bytes of s from its end, not splitting a character, with a
// mark when it was cut.
func tailUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return "…" + s[cut:]
}
