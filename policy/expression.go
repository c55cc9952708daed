package policy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/checker"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
)

// Limits on rule expressions, so a policy cannot make classification slow.
const (
	// ExpressionCostLimit bounds the CEL runtime cost of one evaluation; exceeding it is an
	// evaluation error, and the workload is denied.
	ExpressionCostLimit = 10000
	// ExpressionMaxLength bounds an expression's length in code points.
	ExpressionMaxLength = 4096
)

// celEnv is shared by every policy: a cel.Env is immutable and safe for concurrent use,
// and building one is the most expensive step of compiling.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[Subject](), ext.ParseStructTags(true)),
		cel.Variable("facts", cel.ObjectType("policy.Subject")),
		ext.Strings(),
		cel.ParserExpressionSizeLimit(ExpressionMaxLength),
	)
})

// expression is a compiled rule expression.
type expression struct {
	prg cel.Program
	// digest: the expression names facts.image_digest.
	digest bool
}

// compile prepares every rule's match; the error joins one *Error per bad expression.
func (p *Policy) compile() error {
	var errs []error
	for i, r := range p.Rules {
		m := compileMatch(&r.Match)
		if r.Match.Expression != "" {
			expr, err := compileExpression(r.Match.Expression)
			if err != nil {
				key := fmt.Sprintf("rule[%d].match.expression", i)
				errs = append(errs, p.errorAt(key, ErrBadExpression, fmt.Sprintf("rule %q: %v", r.Name, err)))
				continue
			}
			m.expr = expr
		}
		r.Match.compiled = m
	}
	return errors.Join(errs...)
}

func compileExpression(src string) (*expression, error) {
	env, err := celEnv()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, issuesError(iss)
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("expression has type %s, want bool: compare or test something, e.g. facts.image.startsWith(\"registry.internal/\")", ast.OutputType())
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if !boundedCost(env, ast) {
		opts = append(opts, cel.CostLimit(ExpressionCostLimit))
	}
	prg, err := env.Program(ast, opts...)
	if err != nil {
		return nil, err
	}
	return &expression{prg: prg, digest: strings.Contains(src, "image_digest")}, nil
}

// boundedCost tells whether CEL proves at compile time that the expression's cost stays
// within ExpressionCostLimit, whatever the workload's facts (every size unknown, so taken
// at its largest): a comparison, a prefix test, a map lookup. Only an expression it does
// not prove so (a comprehension over labels, a regular expression, `in` a list) is
// tracked at run time, which costs a quarter of an evaluation.
func boundedCost(env *cel.Env, ast *cel.Ast) bool {
	est, err := env.EstimateCost(ast, unknownSizes{})
	return err == nil && est.Max <= ExpressionCostLimit
}

// unknownSizes is a cost estimator that knows no size and no call's cost beyond CEL's own.
type unknownSizes struct{}

func (unknownSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

func (unknownSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// issuesError puts CEL's compile errors on one line, each with its column in the
// expression, so that every problem in a policy file stays one line of output.
func issuesError(iss *cel.Issues) error {
	var msgs []string
	for _, e := range iss.Errors() {
		msgs = append(msgs, fmt.Sprintf("column %d of the expression: %s", e.Location.Column()+1, e.Message))
	}
	return errors.New(strings.Join(msgs, "; "))
}

// eval runs the expression on s.
func (e *expression) eval(s *Subject) (bool, error) {
	out, _, err := e.prg.Eval(activation{s})
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("expression returned %v, not a bool", out.Type())
	}
	return b, nil
}

// activation binds the variable facts; cheaper per evaluation than a map.
type activation struct{ facts *Subject }

var _ interpreter.Activation = activation{}

func (a activation) ResolveName(name string) (any, bool) {
	if name == "facts" {
		return a.facts, true
	}
	return nil, false
}

func (activation) Parent() interpreter.Activation { return nil }
