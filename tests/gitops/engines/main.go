// Runs the cases of tests/gitops/health_test.lua (exported as JSON) in the engines Argo CD and Flux use, not just
// a Lua 5.4 that resembles them:
//   - the Argo CD health check in gopher-lua (Lua 5.1), opened as Argo CD opens it for a custom check from
//     argocd-cm (package, base and table only) with its one-second deadline, the object converted as Argo CD does;
//   - the Flux Kustomization's healthCheckExprs in cel-go with Flux's environment and evaluation order
//     (fluxcd/pkg runtime/cel: the observedGeneration check, then inProgress, failed, current; an error is Unknown).
//
// Usage: engines CASES.json HEALTH.lua FLUX_KUSTOMIZATIONS.yaml
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	"gopkg.in/yaml.v3"
)

type testCase struct {
	Name    string `json:"name"`
	Object  any    `json:"object"`
	ArgoCD  string `json:"argocd"`
	Message string `json:"message"`
	// What Flux says when it differs from the usual reading of the Argo CD status (hostile shapes).
	Flux string `json:"flux"`
}

func main() {
	if len(os.Args) != 4 && len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: engines CASES.json HEALTH.lua FLUX_KUSTOMIZATIONS.yaml [ACTION_CASES.json ACTIONS_DIR]")
		os.Exit(2)
	}
	cases, err := readCases(os.Args[1])
	check(err)
	script, err := os.ReadFile(os.Args[2])
	check(err)
	exprs, err := fluxExpressions(os.Args[3])
	check(err)

	passed, failed := 0, 0
	report := func(engine, name, problem string) {
		if problem == "" {
			passed++
			return
		}
		failed++
		fmt.Printf("FAIL %s: %s: %s\n", engine, name, problem)
	}
	for _, c := range cases {
		report("argocd (gopher-lua)", c.Name, argocdProblem(string(script), c))
		if want := fluxWant(c); want != nil {
			report("flux (cel-go)", c.Name, fluxProblem(exprs, c, want))
		}
	}
	if len(os.Args) == 6 {
		actionCases, err := readActionCases(os.Args[4])
		check(err)
		discovery, err := os.ReadFile(os.Args[5] + "/discovery.lua")
		check(err)
		command, err := os.ReadFile(os.Args[5] + "/command.lua")
		check(err)
		for _, c := range actionCases {
			report("argocd actions (gopher-lua)", c.Name, actionsProblem(string(discovery), string(command), c))
		}
		fmt.Printf("engines: %d action cases in gopher-lua\n", len(actionCases))
	}
	fmt.Printf("engines: %d cases in gopher-lua and cel-go\n", len(cases))
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

// Numbers as the API server's unstructured objects hold them: int64 when integral, else float64.
func readCases(path string) ([]testCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var cases []testCase
	if err := dec.Decode(&cases); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range cases {
		cases[i].Object = numbers(cases[i].Object)
	}
	return cases, nil
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case map[string]any:
		for k, item := range v {
			v[k] = numbers(item)
		}
	case []any:
		for i, item := range v {
			v[i] = numbers(item)
		}
	}
	return v
}

// --- Argo CD ---

var argocdStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

func argocdProblem(script string, c testCase) string {
	status, message, err := argocdHealth(script, c.Object)
	switch {
	case err != nil:
		return err.Error()
	case !argocdStatuses[status]:
		return fmt.Sprintf("invalid status %q", status)
	case status != c.ArgoCD:
		return fmt.Sprintf("status %s, want %s (message %q)", status, c.ArgoCD, message)
	case !strings.Contains(message, c.Message):
		return fmt.Sprintf("message %q does not contain %q", message, c.Message)
	}
	return ""
}

// A state as util/lua/lua.go opens one for a script from argocd-cm (useOpenLibs not set): package, base and table,
// with a one-second deadline; for resource actions also its "safe" os (time and date) behind require("os").
func argocdState(actions bool) (*lua.LState, context.CancelFunc, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		open := lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}
		if err := l.CallByParam(open, lua.LString(lib.name)); err != nil {
			l.Close()
			return nil, nil, err
		}
	}
	if actions {
		l.PreloadModule(lua.OsLibName, safeOs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	l.SetContext(ctx)
	return l, func() { cancel(); l.Close() }, nil
}

// Argo CD's safe os module: time and date only.
func safeOs(l *lua.LState) int {
	mod := l.NewTable()
	l.SetField(mod, "time", l.NewFunction(func(l *lua.LState) int {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	}))
	l.SetField(mod, "date", l.NewFunction(func(l *lua.LState) int {
		l.Push(lua.LString(time.Now().UTC().Format(time.RFC3339)))
		return 1
	}))
	l.Push(mod)
	return 1
}

// As util/lua/lua.go runs a health script from argocd-cm.
func argocdHealth(script string, obj any) (status, message string, err error) {
	l, done, err := argocdState(false)
	if err != nil {
		return "", "", err
	}
	defer done()
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", fmt.Errorf("script error: %w", err)
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("returned %s, not a table", l.Get(-1).Type())
	}
	var bad []string
	table.ForEach(func(k, v lua.LValue) {
		s, isString := v.(lua.LString)
		switch {
		case !isString:
			bad = append(bad, fmt.Sprintf("%v is a %s", k, v.Type()))
		case k.String() == "status":
			status = string(s)
		case k.String() == "message":
			message = string(s)
		default:
			bad = append(bad, "unexpected field "+k.String())
		}
	})
	if len(bad) > 0 {
		return "", "", errors.New(strings.Join(bad, "; "))
	}
	return status, message, nil
}

// util/lua decodeValue: what the script sees as `obj`.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}

// --- Flux ---

type healthExprs struct{ inProgress, failed, current cel.Program }

func fluxExpressions(path string) (*healthExprs, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc struct {
			Kind string
			Spec struct {
				HealthCheckExprs []struct {
					APIVersion string `yaml:"apiVersion"`
					Kind       string
					InProgress string `yaml:"inProgress"`
					Failed     string
					Current    string
				} `yaml:"healthCheckExprs"`
			}
		}
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("%s: no Kustomization with healthCheckExprs for PerformanceProfile (%w)", path, err)
		}
		for _, e := range doc.Spec.HealthCheckExprs {
			if doc.Kind != "Kustomization" || e.Kind != "PerformanceProfile" || e.APIVersion != "perf.operator.dev/v1alpha1" {
				continue
			}
			out := &healthExprs{}
			for _, x := range []struct {
				text string
				prog *cel.Program
			}{{e.InProgress, &out.inProgress}, {e.Failed, &out.failed}, {e.Current, &out.current}} {
				if x.text == "" {
					continue
				}
				if *x.prog, err = fluxProgram(x.text); err != nil {
					return nil, err
				}
			}
			if out.current == nil {
				return nil, fmt.Errorf("%s: healthCheckExprs without current", path)
			}
			return out, nil
		}
	}
}

// fluxcd/pkg runtime/cel NewExpression, as the status evaluator calls it (parsed, not compiled).
func fluxProgram(expr string) (cel.Program, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return nil, err
	}
	ast, issues := env.Parse(expr)
	if issues != nil && issues.Err() != nil {
		return nil, fmt.Errorf("parsing %q: %w", expr, issues.Err())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100))
}

// What Flux should say: Healthy is Current, Degraded is Failed, Progressing and Suspended are InProgress (or
// Unknown: an expression that cannot be evaluated yet keeps Flux waiting, as InProgress does).
func fluxWant(c testCase) []string {
	if _, ok := c.Object.(map[string]any); !ok {
		return nil
	}
	if c.Flux != "" {
		return []string{c.Flux}
	}
	switch c.ArgoCD {
	case "Healthy":
		return []string{"Current"}
	case "Degraded":
		return []string{"Failed"}
	case "Progressing", "Suspended":
		return []string{"InProgress", "Unknown"}
	}
	return nil
}

func fluxProblem(exprs *healthExprs, c testCase, want []string) string {
	got, err := fluxStatus(exprs, c.Object.(map[string]any))
	if err != nil {
		got = "Unknown"
	}
	for _, w := range want {
		if got == w {
			return ""
		}
	}
	detail := ""
	if err != nil {
		detail = " (" + err.Error() + ")"
	}
	return fmt.Sprintf("%s%s, want %s", got, detail, strings.Join(want, " or "))
}

// fluxcd/pkg runtime/cel StatusEvaluator.Evaluate.
func fluxStatus(exprs *healthExprs, obj map[string]any) (string, error) {
	observed, found, err := nestedInt64(obj, "status", "observedGeneration")
	if err != nil {
		return "", err
	}
	if found {
		generation, found, err := nestedInt64(obj, "metadata", "generation")
		if err != nil {
			return "", err
		}
		if found && observed != generation {
			return "InProgress", nil
		}
	}
	for _, e := range []struct {
		prog   cel.Program
		status string
	}{{exprs.inProgress, "InProgress"}, {exprs.failed, "Failed"}, {exprs.current, "Current"}} {
		if e.prog == nil {
			continue
		}
		val, _, err := e.prog.ContextEval(context.Background(), obj)
		if err != nil {
			return "", err
		}
		b, ok := val.(types.Bool)
		if !ok {
			return "", fmt.Errorf("not a boolean: %v", val)
		}
		if b {
			return e.status, nil
		}
	}
	return "InProgress", nil
}

// unstructured.NestedInt64: absent is not an error, a wrong type on the way is.
func nestedInt64(obj map[string]any, outer, inner string) (int64, bool, error) {
	m, ok := obj[outer]
	if !ok || m == nil {
		return 0, false, nil
	}
	fields, ok := m.(map[string]any)
	if !ok {
		return 0, false, fmt.Errorf(".%s is a %T, not an object", outer, m)
	}
	v, ok := fields[inner]
	if !ok {
		return 0, false, nil
	}
	i, ok := v.(int64)
	if !ok {
		return 0, false, fmt.Errorf(".%s.%s is a %T, not an integer", outer, inner, v)
	}
	return i, true, nil
}
