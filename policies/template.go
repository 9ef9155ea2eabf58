package policies

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
)

// textTemplate is a parsed parameter template and the steps it reads.
type textTemplate struct {
	tmpl *template.Template
	deps map[string]bool
}

var templateFuncs = template.FuncMap{
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"join":       func(sep string, v []string) string { return strings.Join(v, sep) },
	"default": func(def string, v any) string {
		if v == nil || fmt.Sprint(v) == "" {
			return def
		}
		return fmt.Sprint(v)
	},
	"toJSON": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// templateFields are the top-level names templates can read.
var templateFields = fieldNames(reflect.TypeFor[templateData]())

func fieldNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		out = append(out, t.Field(i).Name)
	}
	for i := range t.NumMethod() {
		out = append(out, t.Method(i).Name)
	}
	return out
}

var instanceTemplateFields = append(fieldNames(reflect.TypeFor[Instance]()), "Address")

// parseTemplate parses src and checks what it reads against the scope.
func parseTemplate(src string, earlier stepFacts) (*textTemplate, error) {
	t, err := template.New("").Option("missingkey=error").Funcs(templateFuncs).Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "template: :"))
	}
	tt := &textTemplate{tmpl: t, deps: map[string]bool{}}
	if err := tt.check(t.Root, earlier); err != nil {
		return nil, err
	}
	return tt, nil
}

// check walks the template's nodes and refuses fields the scope does not have.
func (tt *textTemplate) check(n parse.Node, earlier stepFacts) error {
	if reflect.ValueOf(n).IsNil() {
		return nil
	}
	switch x := n.(type) {
	case *parse.ListNode:
		for _, c := range x.Nodes {
			if err := tt.check(c, earlier); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return tt.check(x.Pipe, earlier)
	case *parse.PipeNode:
		for _, c := range x.Cmds {
			if err := tt.check(c, earlier); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		for _, a := range x.Args {
			if err := tt.check(a, earlier); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return tt.checkBranch(&x.BranchNode, earlier)
	case *parse.RangeNode:
		return tt.checkBranch(&x.BranchNode, earlier)
	case *parse.WithNode:
		return tt.checkBranch(&x.BranchNode, earlier)
	case *parse.FieldNode:
		return tt.checkField(x.Ident, earlier)
	}
	return nil
}

func (tt *textTemplate) checkBranch(b *parse.BranchNode, earlier stepFacts) error {
	for _, n := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if n == nil {
			continue
		}
		if err := tt.check(n, earlier); err != nil {
			return err
		}
	}
	return nil
}

func (tt *textTemplate) checkField(ident []string, earlier stepFacts) error {
	if !slices.Contains(templateFields, ident[0]) {
		return fmt.Errorf("no field %q: templates read %s", "."+ident[0], strings.Join(templateFields, ", "))
	}
	switch {
	case ident[0] == "Instance" && len(ident) > 1 && !slices.Contains(instanceTemplateFields, ident[1]):
		return fmt.Errorf("no field %q: the instance has %s", ".Instance."+ident[1],
			strings.Join(instanceTemplateFields, ", "))
	case ident[0] == "Facts" && len(ident) > 1:
		facts, ok := earlier[ident[1]]
		if !ok {
			return fmt.Errorf("no earlier step %q (earlier steps: %s)", ident[1],
				strings.Join(sortedKeys(earlier), ", "))
		}
		tt.deps[ident[1]] = true
		if len(ident) > 2 && !slices.Contains(facts, ident[2]) {
			return fmt.Errorf("step %q has no fact %q (its facts: %s)", ident[1], ident[2], strings.Join(facts, ", "))
		}
	}
	return nil
}

// render executes the template over the scope.
func (tt *textTemplate) render(s *Scope) (string, error) {
	var b strings.Builder
	if err := tt.tmpl.Execute(&b, s.templateData()); err != nil {
		return "", fmt.Errorf("rendering: %s", strings.TrimPrefix(err.Error(), "template: :"))
	}
	return b.String(), nil
}
