package integration

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMQTT measures, for mosquitto and for the embedded broker in one
// run:
//
//   - latency, QoS 1: publish to a bound topic, the function runs, its
//     reply arrives at the publisher's own subscription; against the
//     broker's own round trip (publish to a topic the same client
//     subscribes to), interleaved sample by sample;
//   - sustained QoS 1 messages per second through the durable inbox with a
//     trivial function (testfn's echo, http mode), a burst published with
//     100 messages in flight, until every reply arrived; against the same
//     burst through the broker alone.
func BenchmarkMQTT(b *testing.B) {
	const samples, burst = 1000, 5000
	fmt.Printf("\nmqtt QoS 1, one client: %d interleaved round trips each, then bursts of %d\n", samples, burst)
	fmt.Printf("%-10s %-27s %20s %20s %10s %8s\n", "broker", "what", "through function", "broker alone", "added", "ratio")
	for _, name := range []string{"mosquitto", "embedded"} {
		br := embeddedBroker(b)
		if name == "mosquitto" {
			br = mosquittoBroker(b, false)
		}
		a := mqttAgent(b, br)
		a.mustCLI("deploy", "echo", "--image", built.testfn, "--mqtt", "bench/in=bench/out")
		c := dialMQTT(b, br.port, "bench-"+name)
		c.subscribe(b, "bench/out")
		c.subscribe(b, "bench/base")
		payload := []byte("sensor reading 21.5")
		c.publish("bench/in", payload) // a cold start, not measured
		c.next(b, "bench/out")

		var viaFn, viaBroker []time.Duration
		for range samples {
			start := time.Now()
			c.publish("bench/base", payload)
			viaBroker = append(viaBroker, c.next(b, "bench/base").at.Sub(start))
			start = time.Now()
			c.publish("bench/in", payload)
			viaFn = append(viaFn, c.next(b, "bench/out").at.Sub(start))
		}
		f50, f99, b50, b99 := pct(viaFn, 50), pct(viaFn, 99), pct(viaBroker, 50), pct(viaBroker, 99)
		fmt.Printf("%-10s %-27s %20s %20s %10s %7.1fx\n", name, "round trip p50", us(f50), us(b50), us(f50-b50), float64(f50)/float64(b50))
		fmt.Printf("%-10s %-27s %20s %20s %10s %7.1fx\n", "", "round trip p99", us(f99), us(b99), us(f99-b99), float64(f99)/float64(b99))

		fnRate := burstRate(b, c, "bench/in", "bench/out", payload, burst)
		brRate := burstRate(b, c, "bench/base", "bench/base", payload, burst)
		fmt.Printf("%-10s %-27s %18.0f/s %18.0f/s %10s %7.2fx\n", "", "sustained msgs/s", fnRate, brRate, "", fnRate/brRate)

		b.ReportMetric(float64(f50)/1e3, name+"-fn-p50-us")
		b.ReportMetric(float64(f99)/1e3, name+"-fn-p99-us")
		b.ReportMetric(float64(b50)/1e3, name+"-broker-p50-us")
		b.ReportMetric(float64(b99)/1e3, name+"-broker-p99-us")
		b.ReportMetric(float64(f50-b50)/1e3, name+"-added-p50-us")
		b.ReportMetric(fnRate, name+"-fn-msgs/s")
		b.ReportMetric(brRate, name+"-broker-msgs/s")
		a.stop()
	}
}

// burstRate publishes n messages on topic with at most 100 unacknowledged,
// and returns messages per second until n arrived on want.
func burstRate(b *testing.B, c *mqttClient, topic, want string, payload []byte, n int) float64 {
	const window = 100
	for len(c.acks) > 0 { // acknowledgements of earlier publishes
		<-c.acks
	}
	start := time.Now()
	go func() {
		for i := range n {
			if i >= window {
				<-c.acks
			}
			c.publish(topic, payload)
		}
	}()
	for range n {
		c.next(b, want)
	}
	return float64(n) / time.Since(start).Seconds()
}
