package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// helmBinEnv names the environment variable pointing at the helm binary the chart tests
// run; scripts/test.sh builds helm and sets it. Without it, helm is looked up on PATH.
const helmBinEnv = "REMEDIATOR_HELM_BIN"

// The chart and what the tests render it as.
const (
	chartDir       = "../../charts/remediator"
	chartRelease   = "rem"
	chartNamespace = "monitoring"
	chartFullname  = "rem-remediator"
	// imageRoot is where the image keeps its files; the chart mounts its own beneath.
	imageRoot = "/etc/remediator"
)

// helmBin returns the helm binary, failing the test when it is missing and CI=true, and
// skipping it otherwise.
func helmBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv(helmBinEnv); bin != "" {
		return bin
	}
	if bin, err := exec.LookPath("helm"); err == nil {
		return bin
	}
	hint := "helm not found: run scripts/test.sh, which builds it, or set " + helmBinEnv
	if os.Getenv("CI") == "true" {
		t.Fatal(hint)
	}
	t.Skip(hint)
	return ""
}

// helmTemplate renders the chart in dir and returns what helm printed, or an error
// holding what it said on standard error.
func helmTemplate(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	full := append([]string{"template", chartRelease, dir, "--namespace", chartNamespace}, args...)
	cmd := exec.CommandContext(ctx, helmBin(t), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm %s: %w: %s", strings.Join(full, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// object is one rendered Kubernetes object.
type object map[string]any

// chartObjects are the objects of one rendering.
type chartObjects []object

// renderChart renders the chart with args (-f FILE, --set K=V) and decodes its objects.
func renderChart(t *testing.T, args ...string) chartObjects {
	t.Helper()
	out, err := helmTemplate(t, chartDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	var objs chartObjects
	dec := yaml.NewDecoder(strings.NewReader(out))
	for {
		// a plain map, so that nested maps decode as plain maps too
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("decoding what helm rendered: %v\n%s", err, out)
		}
		if o != nil {
			objs = append(objs, object(o))
		}
	}
}

func (c chartObjects) find(kind string) (object, bool) {
	for _, o := range c {
		if o["kind"] == kind {
			return o, true
		}
	}
	return nil, false
}

func (c chartObjects) get(t *testing.T, kind string) object {
	t.Helper()
	o, ok := c.find(kind)
	if !ok {
		t.Fatalf("the chart rendered no %s", kind)
	}
	return o
}

// dig follows path (map keys and list indexes) from v, failing the test where it breaks.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for i, step := range path {
		switch s := step.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				m, ok = v.(object)
			}
			if !ok {
				t.Fatalf("%v: not a map at %v", path, path[:i])
			}
			if v, ok = m[s]; !ok {
				t.Fatalf("%v: no %q", path, s)
			}
		case int:
			l, ok := v.([]any)
			if !ok || s >= len(l) {
				t.Fatalf("%v: no item %d at %v", path, s, path[:i])
			}
			v = l[s]
		}
	}
	return v
}

// podSpec and container return the Deployment's pod and its one container.
func podSpec(t *testing.T, objs chartObjects) any {
	t.Helper()
	return dig(t, objs.get(t, "Deployment"), "spec", "template", "spec")
}

func container(t *testing.T, objs chartObjects) any {
	t.Helper()
	return dig(t, podSpec(t, objs), "containers", 0)
}

// TestChartHardensThePod checks the defaults that keep the pod safe and alive: one
// replica replaced, not rolled; the restricted security context; both probes.
func TestChartHardensThePod(t *testing.T) {
	t.Parallel()
	objs := renderChart(t)
	dep, pod, c := objs.get(t, "Deployment"), podSpec(t, objs), container(t, objs)

	tests := []struct {
		name string
		at   any
		path string // dotted, as kubectl's jsonpath without the braces
		want string
	}{
		{"runs one replica", dep, "spec.replicas", "1"},
		{"stops the old pod before starting the new one", dep, "spec.strategy.type", "Recreate"},
		{"runs the pod as non-root", pod, "securityContext.runAsNonRoot", "true"},
		{"runs as the image's user", pod, "securityContext.runAsUser", "65532"},
		{"gives the volume to that user's group", pod, "securityContext.fsGroup", "65532"},
		{"filters the pod's system calls", pod, "securityContext.seccompProfile.type", "RuntimeDefault"},
		{"runs the container as non-root", c, "securityContext.runAsNonRoot", "true"},
		{"mounts the root filesystem read-only", c, "securityContext.readOnlyRootFilesystem", "true"},
		{"forbids privilege escalation", c, "securityContext.allowPrivilegeEscalation", "false"},
		{"drops every capability", c, "securityContext.capabilities.drop", "[ALL]"},
		{"filters the container's system calls", c, "securityContext.seccompProfile.type", "RuntimeDefault"},
		{"probes liveness on /healthz", c, "livenessProbe.httpGet.path", "/healthz"},
		{"probes liveness on the served port", c, "livenessProbe.httpGet.port", "http"},
		{"probes readiness on /readyz", c, "readinessProbe.httpGet.path", "/readyz"},
		{"probes readiness on the served port", c, "readinessProbe.httpGet.port", "http"},
		{"serves on 9795", c, "ports.0.containerPort", "9795"},
		{"bounds memory", c, "resources.limits.memory", "256Mi"},
		{"asks for CPU", c, "resources.requests.cpu", "50m"},
		{"gives the pod no Kubernetes API token", pod, "automountServiceAccountToken", "false"},
		{"waits longer than the shutdown grace period", pod, "terminationGracePeriodSeconds", "45"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(dig(t, tt.at, dotted(tt.path)...)); got != tt.want {
			t.Errorf("%s: %s is %s, want %s", tt.name, tt.path, got, tt.want)
		}
	}
}

// dotted splits a path such as "ports.0.containerPort" into map keys and list indexes.
func dotted(path string) []any {
	var out []any
	for _, p := range strings.Split(path, ".") {
		if i, err := strconv.Atoi(p); err == nil {
			out = append(out, i)
			continue
		}
		out = append(out, p)
	}
	return out
}

// TestChartKeepsStateOnTheVolume checks that --storage.path is the claim's mount.
func TestChartKeepsStateOnTheVolume(t *testing.T) {
	t.Parallel()
	objs := renderChart(t)
	c := container(t, objs)

	storage := argValue(t, c, "--storage.path")
	mount := mountAt(t, c, storage)
	vol := volumeNamed(t, podSpec(t, objs), mount)
	claim := dig(t, vol, "persistentVolumeClaim", "claimName")
	pvc := objs.get(t, "PersistentVolumeClaim")
	if name := dig(t, pvc, "metadata", "name"); claim != name {
		t.Errorf("%s is on claim %v, but the chart's claim is %v", storage, claim, name)
	}
	if keep := dig(t, pvc, "metadata", "annotations", "helm.sh/resource-policy"); keep != "keep" {
		t.Errorf("the claim's resource policy is %v, want keep: the audit log outlives the release", keep)
	}
}

// TestChartAnnotatesTheIAMRole checks IRSA: the role ARN on the service account the pod runs as.
func TestChartAnnotatesTheIAMRole(t *testing.T) {
	t.Parallel()
	const role = "arn:aws:iam::123456789012:role/remediator"
	tests := []struct {
		name string
		args []string
		want string // the annotation; "" for none
	}{
		{"annotates the service account with the role",
			[]string{"--set", "serviceAccount.roleArn=" + role}, role},
		{"leaves the annotation out without a role", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs := renderChart(t, tt.args...)
			sa := objs.get(t, "ServiceAccount")
			meta := dig(t, sa, "metadata").(map[string]any)
			annotations, _ := meta["annotations"].(map[string]any)
			if got, _ := annotations["eks.amazonaws.com/role-arn"].(string); got != tt.want {
				t.Errorf("eks.amazonaws.com/role-arn is %q, want %q", got, tt.want)
			}
			if name := dig(t, podSpec(t, objs), "serviceAccountName"); name != meta["name"] {
				t.Errorf("the pod runs as %v, not as the annotated %v", name, meta["name"])
			}
		})
	}
}

// TestChartRefusesBadValues checks that values the chart cannot honour fail the rendering
// with a message naming them.
func TestChartRefusesBadValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"refuses a second replica", []string{"--set", "replicaCount=2"}, "/replicaCount"},
		{"refuses a second replica with a reason even without the schema",
			[]string{"--set", "replicaCount=2", "--skip-schema-validation"},
			"replicaCount: 2 is refused: remediator keeps its guards in a local state store"},
		{"refuses an unknown mode", []string{"--set", "mode=yolo"}, "/mode"},
		{"refuses an unknown mode with a reason even without the schema",
			[]string{"--set", "mode=yolo", "--skip-schema-validation"},
			`mode: must be dry-run or live, not "yolo"`},
		{"refuses a misspelt key", []string{"--set", "replicas=1"}, "replicas"},
		{"refuses a pack the image does not ship", []string{"--set", "policies.shipped={cabalmail-acme}"},
			"/policies/shipped/0"},
		{"refuses a webhook path without a slash",
			[]string{"--set", "webhook.path=webhook"}, "/webhook/path"},
		{"refuses TLS without its Secret",
			[]string{"--set", "tls.enabled=true"}, "tls.secretName: required"},
		{"refuses a policy file named like the main configuration",
			[]string{"--set-string", "policies.files.remediator\\.yml=x"}, "remediator.yml"},
		{"refuses a role that is not an IAM role ARN", []string{"--set", "serviceAccount.roleArn=remediator"},
			"/serviceAccount/roleArn"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := helmTemplate(t, chartDir, tt.args...)
			if err == nil {
				t.Fatalf("helm template %v succeeded; want it refused with %q", tt.args, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("helm template %v failed with\n%v\nwant a message containing %q",
					tt.args, err, tt.want)
			}
		})
	}
}

// chartValueSets are the value files scripts/test.sh lints and renders.
func chartValueSets(t *testing.T) []string {
	t.Helper()
	sets, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(sets) < 3 {
		t.Fatalf("want at least three value sets in %s/ci, found %v (%v)", chartDir, sets, err)
	}
	return sets
}

// TestChartConfigPassesCheck lays out the files the pod would see (the image's policy
// packs and what the chart mounts) for each value set, and runs `remediator check` on
// the rendered configuration.
func TestChartConfigPassesCheck(t *testing.T) {
	t.Parallel()
	for _, set := range chartValueSets(t) {
		t.Run(filepath.Base(set), func(t *testing.T) {
			t.Parallel()
			objs := renderChart(t, "-f", set)
			root := t.TempDir()
			layOutImage(t, root)
			layOutMounts(t, root, objs)

			inPod := argValue(t, container(t, objs), "--config.file")
			cfg := filepath.Join(root, strings.TrimPrefix(inPod, imageRoot))
			code, stdout, stderr := runCommand(t, "check", "--config.file", cfg)
			if code != 0 {
				t.Fatalf("remediator check on the rendered configuration exited %d:\n%s", code, stderr)
			}
			mode := configOf(t, objs)["mode"]
			if !strings.Contains(stdout, fmt.Sprintf(": OK, mode %s,", mode)) {
				t.Errorf("check printed %q, want OK in mode %s", stdout, mode)
			}
		})
	}
}

// layOutImage copies the shipped packs where the Dockerfile puts them, under root.
func layOutImage(t *testing.T, root string) {
	t.Helper()
	dockerfile, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^COPY policies/\*\.yaml (\S+)/$`).FindSubmatch(dockerfile)
	if m == nil {
		t.Fatal("the Dockerfile does not COPY policies/*.yaml into a folder")
	}
	dir := filepath.Join(root, strings.TrimPrefix(string(m[1]), imageRoot))
	packs, err := filepath.Glob("../../policies/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mkdir(t, dir)
	for _, p := range packs {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, filepath.Base(p)), string(data))
	}
}

// layOutMounts writes, under root, each ConfigMap and Secret volume the container mounts
// beneath imageRoot: the ConfigMap's data as rendered, the Secrets' keys as placeholders.
func layOutMounts(t *testing.T, root string, objs chartObjects) {
	t.Helper()
	pod := podSpec(t, objs)
	for _, m := range dig(t, container(t, objs), "volumeMounts").([]any) {
		path := dig(t, m, "mountPath").(string)
		if !strings.HasPrefix(path, imageRoot+"/") {
			continue
		}
		dir := filepath.Join(root, strings.TrimPrefix(path, imageRoot))
		mkdir(t, dir)
		vol := volumeNamed(t, pod, m).(map[string]any)
		switch {
		case vol["configMap"] != nil:
			for name, content := range configMapData(t, objs) {
				writeFile(t, filepath.Join(dir, name), content)
			}
		case vol["secret"] != nil:
			for _, file := range secretFiles(t, vol["secret"]) {
				writeFile(t, filepath.Join(dir, file), "placeholder-"+file+"\n")
			}
		default:
			t.Fatalf("unexpected volume %v under %s", vol, imageRoot)
		}
	}
}

// secretFiles are the files a secret volume holds: its items, or a TLS Secret's keys.
func secretFiles(t *testing.T, secret any) []string {
	t.Helper()
	items, _ := secret.(map[string]any)["items"].([]any)
	if len(items) == 0 {
		return []string{"tls.crt", "tls.key", "ca.crt"}
	}
	var out []string
	for _, it := range items {
		out = append(out, dig(t, it, "path").(string))
	}
	return out
}

func configMapData(t *testing.T, objs chartObjects) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range dig(t, objs.get(t, "ConfigMap"), "data").(map[string]any) {
		out[k] = v.(string)
	}
	return out
}

// configOf decodes the rendered main configuration.
func configOf(t *testing.T, objs chartObjects) map[string]any {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(configMapData(t, objs)["remediator.yml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// argValue returns the value of the container's --name=value argument.
func argValue(t *testing.T, c any, name string) string {
	t.Helper()
	for _, a := range dig(t, c, "args").([]any) {
		if v, ok := strings.CutPrefix(a.(string), name+"="); ok {
			return v
		}
	}
	t.Fatalf("the container has no %s argument", name)
	return ""
}

// mountAt returns the container's volume mount at path.
func mountAt(t *testing.T, c any, path string) any {
	t.Helper()
	for _, m := range dig(t, c, "volumeMounts").([]any) {
		if dig(t, m, "mountPath") == path {
			return m
		}
	}
	t.Fatalf("nothing is mounted at %s", path)
	return nil
}

// volumeNamed returns the pod's volume a mount names.
func volumeNamed(t *testing.T, pod, mount any) any {
	t.Helper()
	name := dig(t, mount, "name")
	for _, v := range dig(t, pod, "volumes").([]any) {
		if dig(t, v, "name") == name {
			return v
		}
	}
	t.Fatalf("no volume %v", name)
	return nil
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// TestChartOptionalObjects checks which objects each choice renders.
func TestChartOptionalObjects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		present []string
		absent  []string
	}{
		{"renders the defaults' objects", nil,
			[]string{"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim",
				"NetworkPolicy", "PodDisruptionBudget"},
			[]string{"ServiceMonitor", "PrometheusRule"}},
		{"adds the Prometheus Operator's objects when asked",
			[]string{"--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"},
			[]string{"ServiceMonitor", "PrometheusRule"}, nil},
		{"creates no Secret for an existing one", []string{"--set", "webhook.existingSecret=mine"},
			nil, []string{"Secret"}},
		{"creates no claim for an existing one", []string{"--set", "persistence.existingClaim=mine"},
			nil, []string{"PersistentVolumeClaim"}},
		{"renders the minimal set", []string{"-f", filepath.Join(chartDir, "ci", "minimal-values.yaml")},
			[]string{"Deployment", "Service", "ConfigMap", "Secret"},
			[]string{"ServiceAccount", "PersistentVolumeClaim", "NetworkPolicy", "PodDisruptionBudget"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			objs := renderChart(t, tt.args...)
			for _, kind := range tt.present {
				if _, ok := objs.find(kind); !ok {
					t.Errorf("no %s rendered", kind)
				}
			}
			for _, kind := range tt.absent {
				if _, ok := objs.find(kind); ok {
					t.Errorf("a %s rendered", kind)
				}
			}
		})
	}
}

// TestChartUsesTheSecretsItNames checks that the volumes read the Secrets the values
// name, and that the token's key is mounted where the configuration reads it.
func TestChartUsesTheSecretsItNames(t *testing.T) {
	t.Parallel()
	objs := renderChart(t, "-f", filepath.Join(chartDir, "ci", "bring-your-own-values.yaml"))
	pod := podSpec(t, objs)
	webhook := volumeNamed(t, pod, map[string]any{"name": "webhook-token"})
	if got := dig(t, webhook, "secret", "secretName"); got != "remediator-webhook" {
		t.Errorf("the token comes from Secret %v, want remediator-webhook", got)
	}
	if got := dig(t, webhook, "secret", "items", 0, "key"); got != "bearer" {
		t.Errorf("the token comes from key %v, want bearer", got)
	}
	if got := dig(t, volumeNamed(t, pod, map[string]any{"name": "storage"}),
		"persistentVolumeClaim", "claimName"); got != "remediator-state" {
		t.Errorf("the state is on claim %v, want remediator-state", got)
	}
	for _, probe := range []string{"livenessProbe", "readinessProbe"} {
		if got := dig(t, container(t, objs), probe, "httpGet", "scheme"); got != "HTTPS" {
			t.Errorf("%s uses %v with TLS enabled, want HTTPS", probe, got)
		}
	}
}

// TestChartPrometheusRule checks remediator's own alerts: each one the runbook in
// docs/operating.md explains, each on a metric docs/metrics.md documents.
func TestChartPrometheusRule(t *testing.T) {
	t.Parallel()
	objs := renderChart(t, "--set", "prometheusRule.enabled=true")
	operating := readDoc(t, "../../docs/operating.md")
	metrics := readDoc(t, "../../docs/metrics.md")

	want := map[string]string{
		"RemediatorDown":                 `up{job="rem-remediator",namespace="monitoring"}`,
		"RemediatorRunFailed":            `remediator_runs_total{outcome="failed",`,
		"RemediatorBreakerOpen":          `remediator_skips_total{reason="breaker_open",`,
		"RemediatorBudgetSpent":          `remediator_skips_total{reason=~"budget|run_budget",`,
		"RemediatorEscalated":            `remediator_steps_total{action="escalate",outcome="executed",`,
		"RemediatorEscalationFailed":     `remediator_steps_total{action="escalate",outcome="failed",`,
		"RemediatorReloadFailed":         `remediator_config_last_reload_successful{`,
		"RemediatorNotificationsRefused": `remediator_notifications_total{result!~"accepted|unavailable",`,
	}
	rules := dig(t, objs.get(t, "PrometheusRule"), "spec", "groups", 0, "rules").([]any)
	var got []string
	for _, r := range rules {
		name, expr := dig(t, r, "alert").(string), dig(t, r, "expr").(string)
		got = append(got, name)
		if !strings.Contains(expr, want[name]) {
			t.Errorf("%s: expr %q does not contain %q", name, expr, want[name])
		}
		if !strings.Contains(expr, `job="rem-remediator",namespace="monitoring"`) {
			t.Errorf("%s: expr %q is not limited to this installation's series", name, expr)
		}
		anchor := strings.ToLower(name)
		if url := dig(t, r, "annotations", "runbook_url").(string); !strings.HasSuffix(url, "#"+anchor) {
			t.Errorf("%s: runbook_url %s does not point at #%s", name, url, anchor)
		}
		if !strings.Contains(operating, "\n### "+name+"\n") {
			t.Errorf("%s: docs/operating.md has no runbook heading ### %s", name, name)
		}
		metric := regexp.MustCompile(`remediator_[a-z_]+`).FindString(expr)
		if metric != "" && !strings.Contains(metrics, "`"+metric+"`") {
			t.Errorf("%s: docs/metrics.md does not document %s", name, metric)
		}
	}
	slices.Sort(got)
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("alerts %v, want %v", got, names)
	}
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestChartSchemaKnowsShippedPacks keeps the schema's list of shipped packs in step with
// policies/*.yaml, which the image carries.
func TestChartSchemaKnowsShippedPacks(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Policies struct {
				Properties struct {
					Shipped struct {
						Items struct {
							Enum []string `json:"enum"`
						} `json:"items"`
					} `json:"shipped"`
				} `json:"properties"`
			} `json:"policies"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	known := schema.Properties.Policies.Properties.Shipped.Items.Enum
	packs, err := filepath.Glob("../../policies/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		name := strings.TrimSuffix(filepath.Base(p), ".yaml")
		if !slices.Contains(known, name) {
			t.Errorf("the image ships %s, but values.schema.json does not offer it in "+
				"policies.shipped", name)
		}
	}
}

// TestChartNotesPrintTheReceiver renders NOTES.txt and checks the Alertmanager receiver it
// prints: valid YAML that routes to the Service with the token.
func TestChartNotesPrintTheReceiver(t *testing.T) {
	t.Parallel()
	notes := renderNotes(t, "--set", "webhook.path=/hooks/am")

	snippet := indentedBlockAfter(t, notes, "in alertmanager.yml:")
	var am struct {
		Route struct {
			Routes []struct {
				Receiver string `yaml:"receiver"`
				Continue bool   `yaml:"continue"`
			} `yaml:"routes"`
		} `yaml:"route"`
		Receivers []struct {
			Name           string `yaml:"name"`
			WebhookConfigs []struct {
				URL          string `yaml:"url"`
				SendResolved bool   `yaml:"send_resolved"`
				HTTPConfig   struct {
					Authorization struct {
						Type            string `yaml:"type"`
						CredentialsFile string `yaml:"credentials_file"`
					} `yaml:"authorization"`
				} `yaml:"http_config"`
			} `yaml:"webhook_configs"`
		} `yaml:"receivers"`
	}
	if err := yaml.Unmarshal([]byte(snippet), &am); err != nil {
		t.Fatalf("the receiver snippet is not YAML: %v\n%s", err, snippet)
	}
	if len(am.Route.Routes) != 1 || len(am.Receivers) != 1 || len(am.Receivers[0].WebhookConfigs) != 1 {
		t.Fatalf("want one route and one receiver with one webhook, got %+v", am)
	}
	r, wh := am.Route.Routes[0], am.Receivers[0].WebhookConfigs[0]
	if r.Receiver != am.Receivers[0].Name || !r.Continue {
		t.Errorf("the route goes to %q (continue %v), want the receiver %q and continue",
			r.Receiver, r.Continue, am.Receivers[0].Name)
	}
	if want := "http://" + chartFullname + "." + chartNamespace + ".svc:9795/hooks/am"; wh.URL != want {
		t.Errorf("webhook url %s, want %s", wh.URL, want)
	}
	auth := wh.HTTPConfig.Authorization
	if !wh.SendResolved || auth.Type != "Bearer" ||
		!strings.HasSuffix(auth.CredentialsFile, "/"+chartFullname+"-webhook/token") {
		t.Errorf("the webhook does not send resolutions and the chart's token: %+v", wh)
	}
	if !strings.Contains(notes, "get secret "+chartFullname+"-webhook") {
		t.Errorf("the notes do not say how to read the token:\n%s", notes)
	}
}

// renderNotes renders NOTES.txt, which helm template leaves out, by rendering a copy of
// the chart whose NOTES.txt is a ConfigMap.
func renderNotes(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "remediator")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "templates", "NOTES.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "templates", "_notes.tpl"),
		`{{- define "test.notes" -}}`+string(notes)+`{{- end }}`)
	writeFile(t, filepath.Join(dir, "templates", "notes.yaml"),
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"+
			`{{ include "test.notes" . | indent 4 }}`+"\n")
	out, err := helmTemplate(t, dir, append(args, "--show-only", "templates/notes.yaml")...)
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal([]byte(out), &cm); err != nil {
		t.Fatalf("decoding the notes: %v\n%s", err, out)
	}
	return cm.Data["notes"]
}

// indentedBlockAfter returns the indented lines after the line containing marker,
// dedented, up to the first line indented less.
func indentedBlockAfter(t *testing.T, text, marker string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, marker)
	if !ok {
		t.Fatalf("no %q in\n%s", marker, text)
	}
	lines := strings.Split(strings.TrimLeft(rest, "\n"), "\n")
	indent := len(lines[0]) - len(strings.TrimLeft(lines[0], " "))
	var b strings.Builder
	for _, l := range lines {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, strings.Repeat(" ", indent)) {
			break
		}
		b.WriteString(strings.TrimPrefix(l, strings.Repeat(" ", indent)) + "\n")
	}
	return b.String()
}

// updateRules rewrites the ECS example's Prometheus rules from the chart.
var updateRules = flag.Bool("update-rules", false,
	"rewrite examples/ecs/prometheus-rules.yml from the chart")

// ecsRules is the rules file for a Prometheus that scrapes remediator as job "remediator".
const ecsRules = "../../examples/ecs/prometheus-rules.yml"

// TestECSPrometheusRulesAreCurrent keeps the rules file of the ECS example equal to the
// chart's PrometheusRule, so that both installations get the same alerts.
func TestECSPrometheusRulesAreCurrent(t *testing.T) {
	t.Parallel()
	out, err := helmTemplate(t, chartDir, "--set", "prometheusRule.enabled=true",
		"--set-string", `prometheusRule.selector=job="remediator"`,
		"--show-only", "templates/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, spec, ok := strings.Cut(out, "\nspec:\n")
	if !ok {
		t.Fatalf("no spec in the rendered PrometheusRule:\n%s", out)
	}
	var b strings.Builder
	b.WriteString("# remediator's own alerts, for a Prometheus that scrapes it as job " +
		"\"remediator\" (rule_files).\n" +
		"# Generated from the Helm chart's PrometheusRule:\n" +
		"#   go test ./cmd/remediator -run ECSPrometheusRules -update-rules\n" +
		"# docs/operating.md has a runbook for each alert.\n")
	for _, line := range strings.Split(strings.TrimRight(spec, "\n"), "\n") {
		b.WriteString(strings.TrimPrefix(line, "  ") + "\n")
	}
	if *updateRules {
		writeFile(t, ecsRules, b.String())
	}
	got, err := os.ReadFile(ecsRules)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != b.String() {
		t.Error(ecsRules + " is stale: run go test ./cmd/remediator -run ECSPrometheusRules -update-rules")
	}
}
