// The Argo CD resource actions of a PerformanceProfile (charts/perf-operator/argocd/actions) in gopher-lua, on the
// cases tests/gitops/actions_test.lua exports: discovery enables exactly the expected actions, and each action
// writes the canary command annotation VERB@STAMP, keeping the other annotations.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The verbs of perf_canary::command::Command, in the order of the definitions.
var actionVerbs = []string{"pause", "resume", "promote", "promote-full", "abort", "retry"}

const commandAnnotation = "perf.operator.dev/canary-command"

type actionCase struct {
	Name    string          `json:"name"`
	Object  any             `json:"object"`
	Enabled json.RawMessage `json:"enabled"` // a list of verbs, or {} when none
}

func readActionCases(path string) ([]actionCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cases []actionCase
	if err := json.Unmarshal(data, &cases); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range cases {
		cases[i].Object = numbers(cases[i].Object)
	}
	return cases, nil
}

func (c actionCase) enabled() map[string]bool {
	var verbs []string
	_ = json.Unmarshal(c.Enabled, &verbs) // {} (none) leaves it empty
	out := map[string]bool{}
	for _, v := range verbs {
		out[v] = true
	}
	return out
}

func actionsProblem(discovery, command string, c actionCase) string {
	got, err := discover(discovery, c.Object)
	if err != nil {
		return "discovery: " + err.Error()
	}
	want := c.enabled()
	var wrong []string
	for _, verb := range actionVerbs {
		disabled, ok := got[verb]
		if !ok {
			wrong = append(wrong, verb+" missing")
		} else if disabled == want[verb] {
			wrong = append(wrong, fmt.Sprintf("%s disabled=%v", verb, disabled))
		}
	}
	if len(got) != len(actionVerbs) {
		wrong = append(wrong, fmt.Sprintf("%d actions, want %d", len(got), len(actionVerbs)))
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		return "discovery: " + strings.Join(wrong, ", ")
	}
	for _, verb := range actionVerbs {
		value, others, err := runAction(strings.ReplaceAll(command, "__VERB__", verb), c.Object)
		if err != nil {
			return verb + ": " + err.Error()
		}
		if !strings.HasPrefix(value, verb+"@") {
			return fmt.Sprintf("%s: annotation %q", verb, value)
		}
		if owner, kept := others["team.example/owner"]; hasOwner(c.Object) && (!kept || owner != "payments") {
			return verb + ": lost the other annotations"
		}
	}
	return ""
}

func hasOwner(obj any) bool {
	meta, _ := obj.(map[string]any)["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	return annotations["team.example/owner"] != nil
}

// discover runs discovery.lua: each action's `disabled`.
func discover(script string, obj any) (map[string]bool, error) {
	l, done, err := argocdState(true)
	if err != nil {
		return nil, err
	}
	defer done()
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("returned %s, not a table", l.Get(-1).Type())
	}
	out := map[string]bool{}
	var bad error
	table.ForEach(func(k, v lua.LValue) {
		action, isTable := v.(*lua.LTable)
		disabled, isBool := action.RawGetString("disabled").(lua.LBool)
		if !isTable || !isBool {
			bad = fmt.Errorf("%v: not {disabled = boolean}", k)
			return
		}
		out[k.String()] = bool(disabled)
	})
	return out, bad
}

// runAction runs one action.lua: the command annotation it wrote and the other annotations.
func runAction(script string, obj any) (string, map[string]string, error) {
	l, done, err := argocdState(true)
	if err != nil {
		return "", nil, err
	}
	defer done()
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", nil, err
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", nil, fmt.Errorf("returned %s, not the object", l.Get(-1).Type())
	}
	meta, _ := result.RawGetString("metadata").(*lua.LTable)
	if meta == nil {
		return "", nil, fmt.Errorf("no metadata")
	}
	annotations, _ := meta.RawGetString("annotations").(*lua.LTable)
	if annotations == nil {
		return "", nil, fmt.Errorf("no annotations")
	}
	others := map[string]string{}
	annotations.ForEach(func(k, v lua.LValue) { others[k.String()] = v.String() })
	value := others[commandAnnotation]
	delete(others, commandAnnotation)
	return value, others, nil
}
