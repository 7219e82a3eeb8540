// Command guest exercises the engine's services through the Go SDK: objects, nested tasks,
// wait, actors.
package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

type Counter struct{ N int }

type FanArgs struct {
	N     int
	Sleep bool
}

func init() {
	lumen.Require(abi.CapObjects, abi.CapTasks, abi.CapActors)

	lumen.BytesTask("echo", func(b []byte) ([]byte, error) { return b, nil })
	lumen.Task("square", func(n int) (int, error) { return n * n, nil })
	lumen.Task("fail", func(n int) (int, error) { return 0, lumen.NewError("E_FAIL", "failed on %d", n) })
	lumen.Task("trap", func(n int) (int, error) {
		var p *Counter
		return p.N, nil // nil dereference: a runtime panic the SDK reports
	})
	lumen.Task("spin", func(n int) (int, error) {
		for {
		}
	})

	// nested submits square(n) in its own module and returns its result.
	lumen.Task("nested", func(n int) (int, error) {
		ref, err := lumen.Submit("square", n)
		if err != nil {
			return 0, err
		}
		return lumen.Get[int](ref)
	})
	// fanout submits square(0..n-1), waits for all and sums them.
	lumen.Task("fanout", func(a FanArgs) (int, error) {
		refs := make([]lumen.Ref, a.N)
		for i := range refs {
			var err error
			if refs[i], err = lumen.Submit("square", i); err != nil {
				return 0, err
			}
		}
		ready, notReady, err := lumen.Wait(refs, len(refs), -1)
		if err != nil {
			return 0, err
		}
		if len(ready) != a.N || len(notReady) != 0 {
			return 0, errors.New("wait returned early")
		}
		sum := 0
		for _, r := range refs {
			v, err := lumen.Get[int](r)
			if err != nil {
				return 0, err
			}
			sum += v
		}
		return sum, nil
	})
	// failchild reports how its child's failure reached it.
	lumen.Task("failchild", func(n int) (string, error) {
		ref, err := lumen.Submit("fail", n)
		if err != nil {
			return "", err
		}
		_, err = lumen.Get[int](ref)
		var e *lumen.Error
		if !errors.As(err, &e) || !errors.Is(err, lumen.ErrFailed) {
			return "", errors.New("child failure not reported as ErrFailed")
		}
		return string(e.Kind) + "/" + e.Code + "/" + e.Message, nil
	})
	// waittimeout waits for a spinning child with a timeout.
	lumen.Task("waittimeout", func(n int) (int, error) {
		ref, err := lumen.Submit("spin", 0, lumen.WithTimeout(2*time.Second))
		if err != nil {
			return 0, err
		}
		ready, notReady, err := lumen.Wait([]lumen.Ref{ref}, 1, 50*time.Millisecond)
		if err != nil {
			return 0, err
		}
		_, gerr := ref.GetBytesTimeout(10 * time.Millisecond)
		if !errors.Is(gerr, lumen.ErrTimeout) {
			return 0, errors.New("get did not time out")
		}
		if err := lumen.Cancel(ref); err != nil {
			return 0, err
		}
		return len(ready)*10 + len(notReady), nil
	})
	// objects puts bytes, passes the ref to a child by reference and returns what it read.
	lumen.BytesTask("objects", func(b []byte) ([]byte, error) {
		ref, err := lumen.PutBytes(b)
		if err != nil {
			return nil, err
		}
		out, err := lumen.Submit("readref", struct{ R lumen.Ref }{ref})
		if err != nil {
			return nil, err
		}
		s, err := lumen.Get[string](out)
		if err != nil {
			return nil, err
		}
		if err := ref.Release(); err != nil {
			return nil, err
		}
		if _, err := ref.GetBytes(); !errors.Is(err, lumen.ErrNotFound) {
			return nil, errors.New("released object still readable")
		}
		return []byte(s), nil
	})
	// depth submits itself n levels deep, each level waiting on the next.
	lumen.Task("depth", func(n int) (int, error) {
		if n == 0 {
			return 0, nil
		}
		ref, err := lumen.Submit("depth", n-1)
		if err != nil {
			return 0, err
		}
		v, err := lumen.Get[int](ref)
		return v + 1, err
	})
	// greedy asks for more cpus than any node has.
	lumen.Task("greedy", func(n int) (string, error) {
		_, err := lumen.Submit("square", 1, lumen.WithResources(abi.Resources{CPU: float64(n)}))
		if err == nil {
			return "", errors.New("submitted")
		}
		return err.Error(), nil
	})
	// busy spins through n*10000 loop turns (no clock to sleep on) and returns n.
	lumen.Task("busy", func(n int) (int, error) {
		x := 0
		for i := 0; i < n*10000; i++ {
			x += i & 1
		}
		if x < 0 {
			return 0, errors.New("unreachable")
		}
		return n, nil
	})
	// orphan submits a spinning child (detached when n is 1) and then fails: the child ends with
	// it unless detached.
	lumen.Task("orphan", func(n int) (int, error) {
		opts := []lumen.TaskOption{lumen.WithTimeout(20 * time.Second)}
		if n == 1 {
			opts = []lumen.TaskOption{lumen.DetachedTask(), lumen.WithTimeout(3 * time.Second)}
		}
		if _, err := lumen.Submit("spin", 0, opts...); err != nil {
			return 0, err
		}
		return 0, lumen.NewError("E_ORPHAN", "failing with a child running")
	})
	// spawn submits n spinning children and returns at once: they run on after it.
	lumen.Task("spawn", func(n int) (int, error) {
		for i := 0; i < n; i++ {
			if _, err := lumen.Submit("spin", 0, lumen.WithTimeout(time.Minute)); err != nil {
				return i, err
			}
		}
		return n, nil
	})
	// inherit submits a spinning child asking for a minute and waits for it: the child inherits
	// this call's deadline, so the wait ends with the call's own time limit.
	lumen.Task("inherit", func(n int) (string, error) {
		ref, err := lumen.Submit("spin", 0, lumen.WithTimeout(time.Minute))
		if err != nil {
			return "", err
		}
		_, err = lumen.Get[int](ref)
		return fmt.Sprint(err), nil
	})
	// bomb submits two copies of itself and waits for both: a fork bomb, bounded only by the
	// job's quotas and the node's queue. It returns how many tasks its tree ran.
	lumen.Task("bomb", func(n int) (int, error) {
		a, err := lumen.Submit("bomb", n+1)
		if err != nil {
			return 0, err
		}
		b, err := lumen.Submit("bomb", n+1)
		if err != nil {
			return 0, err
		}
		x, err := lumen.Get[int](a)
		if err != nil {
			return 0, err
		}
		y, err := lumen.Get[int](b)
		return x + y + 1, err
	})
	// chain submits one copy of itself and returns at once: a chain that runs on after the task
	// (and the job) that started it returned, until the job ends.
	lumen.Task("chain", func(n int) (int, error) {
		if _, err := lumen.Submit("chain", n+1); err != nil {
			return 0, err
		}
		return n, nil
	})
	// keep puts s as an object and returns its ref, which outlives the call.
	lumen.Task("keep", func(s string) (lumen.Ref, error) { return lumen.Put(s) })
	lumen.Task("readref", func(in struct{ R lumen.Ref }) (string, error) {
		b, err := in.R.GetBytes()
		return string(b), err
	})
	// append reads the JSON string R refers to and returns it with S appended.
	lumen.Task("append", func(in struct {
		R lumen.Ref
		S string
	}) (string, error) {
		s, err := lumen.Get[string](in.R)
		return s + in.S, err
	})
	// actorref puts n, creates a Counter at 10 that needs an accel (so it runs where there is
	// one) and passes it the object by reference.
	lumen.Task("actorref", func(n int) (int, error) {
		ref, err := lumen.Put(n)
		if err != nil {
			return 0, err
		}
		a, err := lumen.NewActor("Counter", 10, lumen.ActorResources(abi.Resources{Custom: map[string]float64{"accel": 1}}))
		if err != nil {
			return 0, err
		}
		out, err := a.Call("addref", struct{ R lumen.Ref }{ref})
		if err != nil {
			return 0, err
		}
		v, err := lumen.Get[int](out)
		if err != nil {
			return 0, err
		}
		return v, a.Kill()
	})
	// actorkeep creates a Counter at n that needs an accel and reads the object its keep method
	// returns by reference.
	lumen.Task("actorkeep", func(n int) (int, error) {
		a, err := lumen.NewActor("Counter", n, lumen.ActorResources(abi.Resources{Custom: map[string]float64{"accel": 1}}))
		if err != nil {
			return 0, err
		}
		out, err := a.Call("keep", 0)
		if err != nil {
			return 0, err
		}
		ref, err := lumen.Get[lumen.Ref](out)
		if err != nil {
			return 0, err
		}
		v, err := lumen.Get[int](ref)
		if err != nil {
			return 0, err
		}
		return v, a.Kill()
	})
	// counter creates a Counter, increments it n times and returns the last value.
	lumen.Task("counter", func(n int) (int, error) {
		a, err := lumen.NewActor("Counter", 100)
		if err != nil {
			return 0, err
		}
		var last lumen.Ref
		for i := 0; i < n; i++ {
			if last, err = a.Call("incr", 1); err != nil {
				return 0, err
			}
		}
		v, err := lumen.Get[int](last)
		if err != nil {
			return 0, err
		}
		return v, a.Kill()
	})
	// crashy creates a Counter allowed one restart, crashes it twice and reports each result.
	lumen.Task("crashy", func(int) ([]string, error) {
		a, err := lumen.NewActor("Counter", 0, lumen.MaxRestarts(1))
		if err != nil {
			return nil, err
		}
		var out []string
		for _, m := range []string{"incr", "crash", "incr", "crash", "incr"} {
			ref, err := a.Call(m, 5)
			if errors.Is(err, lumen.ErrNotFound) {
				out = append(out, m+":ended") // the actor is gone: refused at once
				continue
			} else if err != nil {
				return nil, err
			}
			v, err := lumen.Get[int](ref)
			if err != nil {
				var e *lumen.Error
				errors.As(err, &e)
				out = append(out, m+":"+string(e.Kind))
				continue
			}
			out = append(out, m+":"+itoa(v))
		}
		return out, nil
	})
	c := lumen.Actor("Counter", func(start int) (*Counter, error) { return &Counter{N: start}, nil })
	lumen.Method(c, "incr", func(c *Counter, by int) (int, error) { c.N += by; return c.N, nil })
	// keep puts the count as an object of the actor's and returns its ref.
	lumen.Method(c, "keep", func(c *Counter, _ int) (lumen.Ref, error) { return lumen.Put(c.N) })
	// addref adds the int R refers to.
	lumen.Method(c, "addref", func(c *Counter, in struct{ R lumen.Ref }) (int, error) {
		by, err := lumen.Get[int](in.R)
		c.N += by
		return c.N, err
	})
	lumen.Method(c, "crash", func(c *Counter, _ int) (int, error) {
		crash()
		return 0, nil
	})
	lumen.SaveLoad(c,
		func(c *Counter) ([]byte, error) { return []byte(itoa(c.N)), nil },
		func(b []byte) (*Counter, error) {
			n := 0
			for _, d := range b {
				n = n*10 + int(d-'0')
			}
			return &Counter{N: n}, nil
		})
	// leaky creates an owned and a detached actor and returns without killing either.
	lumen.Task("leaky", func(int) (string, error) {
		if _, err := lumen.NewActor("Counter", 1); err != nil {
			return "", err
		}
		if _, err := lumen.NewActor("Counter", 2, lumen.Detached(), lumen.Named("kept", "")); err != nil {
			return "", err
		}
		_, err := lumen.NewActor("Counter", 3, lumen.MaxConcurrency(4))
		if err == nil {
			return "", errors.New("max_concurrency 4 accepted")
		}
		return err.Error(), nil
	})
}

// crash ends the instance the way a fatal runtime error does: the SDK cannot recover it.
func crash() { os.Exit(3) }

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func main() {}
