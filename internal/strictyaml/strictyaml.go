// Package strictyaml decodes YAML documents strictly and reports every problem with the
// file, the line and the field path it concerns. It owns nothing but decoding: defaults
// and validation belong to the packages whose types are decoded.
package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one problem found in a document, placed at a line and a field path.
type Error struct {
	File string
	Line int
	Path string
	Msg  string
}

// Error renders the problem as "file:line: path: message", leaving out the parts that
// are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(":")
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors collects every problem of one or more documents, in the order of their lines.
type Errors []*Error

// Error renders one problem a line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the problems by file, then line, then path.
func (es Errors) Sort() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].File != es[j].File {
			return es[i].File < es[j].File
		}
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Path < es[j].Path
	})
}

// Err returns nil when there is no problem, and the sorted collection otherwise.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	es.Sort()
	return es
}

// Positions maps a field path ("policies[1].steps[2].action") to the line where it
// stands, so that validation done after decoding can still name the line.
type Positions struct {
	File  string
	lines map[string]int
}

// Line returns the line of path, or of its nearest ancestor that has one, or 0.
func (p *Positions) Line(path string) int {
	if p == nil {
		return 0
	}
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			return p.lines[""]
		}
		path = path[:cut]
	}
}

// Errorf makes an Error placed at path.
func (p *Positions) Errorf(path, format string, args ...any) *Error {
	e := &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
	if p != nil {
		e.File = p.File
		e.Line = p.Line(path)
	}
	return e
}

// Decode parses data, a YAML document read from file, into v. Unknown keys are errors,
// and so are values of the wrong type; all of them are returned together as Errors.
// An empty document leaves v unchanged.
func Decode(file string, data []byte, v any) (*Positions, error) {
	pos := &Positions{File: file, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return pos, Errors{syntaxError(file, err)}
	}
	if len(doc.Content) == 0 {
		// an empty file: nothing to decode, defaults stand
		return pos, nil
	}
	root := doc.Content[0]

	var errs Errors
	walk(pos, root, reflect.TypeOf(v), "", &errs)
	if err := root.Decode(v); err != nil {
		errs = append(errs, typeErrors(file, pos, err)...)
	}
	return pos, errs.Err()
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Msg: msg}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
	}
	return e
}

func typeErrors(file string, pos *Positions, err error) Errors {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return Errors{{File: file, Msg: err.Error()}}
	}
	var errs Errors
	for _, s := range te.Errors {
		e := &Error{File: file, Msg: s}
		if m := lineRE.FindStringSubmatch(s); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
			e.Path = pos.pathAt(e.Line)
		}
		if strings.Contains(e.Msg, " not found in type ") {
			// reported already, with its path, by walk
			continue
		}
		errs = append(errs, e)
	}
	return errs
}

// pathAt returns the deepest path that starts on line, for errors that yaml reports by
// line only.
func (p *Positions) pathAt(line int) string {
	best := ""
	found := false
	for path, l := range p.lines {
		if l == line && (!found || len(path) > len(best)) {
			best, found = path, true
		}
	}
	return best
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	// obsoleteUnmarshaler is the yaml.v2 interface that yaml.v3 still honours.
	obsoleteUnmarshalerType = reflect.TypeFor[interface {
		UnmarshalYAML(func(any) error) error
	}]()
	textUnmarshalerType = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

// walk records the line of every path under n and reports keys that t does not have.
func walk(pos *Positions, n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if _, ok := pos.lines[path]; !ok {
		pos.lines[path] = n.Line
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || decodesItself(t) {
		return
	}
	switch {
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		walkStruct(pos, n, t, path, errs)
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			child := join(path, key)
			pos.lines[child] = n.Content[i].Line
			walk(pos, n.Content[i+1], t.Elem(), child, errs)
		}
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i, c := range n.Content {
			walk(pos, c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	}
}

func walkStruct(pos *Positions, n *yaml.Node, t reflect.Type, path string, errs *Errors) {
	fields := structFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		keyNode := n.Content[i]
		key := keyNode.Value
		child := join(path, key)
		pos.lines[child] = keyNode.Line
		ft, ok := fields[key]
		if !ok {
			*errs = append(*errs, &Error{
				File: pos.File, Line: keyNode.Line, Path: child,
				Msg: unknownKeyMessage(key, fields),
			})
			continue
		}
		walk(pos, n.Content[i+1], ft, child, errs)
	}
}

func unknownKeyMessage(key string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sort.Strings(names)
	return fmt.Sprintf("unknown key %q%s", key, Suggest(key, names))
}

// structFields maps the YAML names of t's fields, inlined ones included, to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range structFields(ft) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func decodesItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, it := range []reflect.Type{unmarshalerType, obsoleteUnmarshalerType, textUnmarshalerType} {
		if t.Implements(it) || pt.Implements(it) {
			return true
		}
	}
	return t.Kind() == reflect.Interface
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Suggest returns ` (did you mean "x"?)` when a candidate is within two edits of s, and
// "" otherwise.
func Suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
