package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/edgefaas/edgefaas/metering"
)

// run invokes a function for any trigger, then meters and counts the call.
// The activation record is committed before run returns, so before the
// answer leaves the agent (DESIGN.md section 8): kill -9 after an answer
// cannot lose its record.
func (a *Agent) run(ctx context.Context, f *function, c call) result {
	start := time.Now()
	res, f := f.invoke(ctx, c) // f: the version that served it
	d := time.Since(start)
	name := f.fn.Spec.Name
	var gbs float64
	if res.Ran {
		rec := metering.Record{
			CallID: c.ID, Function: name, ImageDigest: f.fn.ImageDigest, Trigger: c.Trigger,
			Start: start, Duration: d, MemoryBytes: f.fn.Spec.Memory, CPUTime: res.CPUTime,
			Cold: res.Cold, InitTime: res.InitTime, Status: res.FaasStatus,
			RequestBytes: int64(len(c.Body)), ResponseBytes: int64(len(res.Body)),
		}
		// The caller's going away must not cost the record: the function ran.
		if _, err := a.ledger.Record(context.WithoutCancel(ctx), rec); err != nil {
			a.log.Error("activation record not stored", "function", name, "call_id", c.ID, "err", err)
		}
		gbs = rec.GBSeconds()
	}
	if res.FaasStatus != statusOK {
		a.log.Info("invocation failed", "function", name, "call_id", c.ID, "status", res.FaasStatus, "code", res.Code)
	}
	a.metrics.observe(name, c.Trigger, res, d, gbs)
	return res
}

// invokeByName runs a call for a trigger other than the gateway (MQTT,
// async, schedule): the function is looked up at the time of the call, so
// a deploy in between is picked up.
func (a *Agent) invokeByName(ctx context.Context, name string, c call) result {
	f, err := a.invoker.lookup(name)
	if err != nil {
		return errResult(http.StatusNotFound, statusNotFound, err.Error())
	}
	if int64(len(c.Body)) > f.fn.Spec.MaxRequest {
		return errResult(http.StatusRequestEntityTooLarge, statusTooLarge, "request body larger than the function's limit")
	}
	return a.run(ctx, f, c)
}
