package mqtt

import (
	"fmt"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefaas/edgefaas/api"
	"github.com/edgefaas/edgefaas/internal/testmqtt"
)

// BenchmarkRoundTrip isolates this package's share of the MQTT latency: a
// QoS 1 message through the Service (inbox commit and fsync, dispatch, a
// Go function that answers at once, the reply) against the broker's own
// round trip, interleaved, on mosquitto and the embedded broker. The
// sandboxed function's share is in the integration benchmark.
func BenchmarkRoundTrip(b *testing.B) {
	const samples = 1000
	fmt.Printf("\nmqtt package alone (Go echo function, no sandbox), QoS 1, %d round trips\n", samples)
	fmt.Printf("%-10s %12s %12s %12s\n", "broker", "service p50", "broker p50", "added")
	for _, name := range []string{"mosquitto", "embedded"} {
		broker := BrokerEmbedded
		if name == "mosquitto" {
			broker = testmqtt.Start(b, false).URL()
		}
		cfg := Config{Broker: broker, Invoke: echo, ClientID: "bench-" + name, Listen: "127.0.0.1:0", Anonymous: true,
			Bindings: map[string][]api.MQTTBinding{"f": {{Filter: "b/in", Reply: "b/out", QoS: 1}}}}
		cfg.DB = openDB(b, b.TempDir())
		s, err := Start(cfg)
		if err != nil {
			b.Fatal(err)
		}
		waitSubscribed(b, s)
		got := make(chan time.Time, 1)
		c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + brokerAddr(s)).SetClientID("bench-client-" + name))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		for _, f := range []string{"b/out", "b/base"} {
			c.Subscribe(f, 1, func(paho.Client, paho.Message) { got <- time.Now() }).Wait()
		}
		var viaSvc, viaBroker []time.Duration
		for i := range samples + 1 {
			start := time.Now()
			c.Publish("b/base", 1, false, "x")
			viaBroker = append(viaBroker, (<-got).Sub(start))
			start = time.Now()
			c.Publish("b/in", 1, false, "x")
			viaSvc = append(viaSvc, (<-got).Sub(start))
			if i == 0 {
				viaSvc, viaBroker = viaSvc[:0], viaBroker[:0]
			}
		}
		c.Disconnect(100)
		s.Close()
		slices.Sort(viaSvc)
		slices.Sort(viaBroker)
		s50, b50 := viaSvc[len(viaSvc)/2], viaBroker[len(viaBroker)/2]
		fmt.Printf("%-10s %10.0fus %10.0fus %10.0fus\n", name, float64(s50)/1e3, float64(b50)/1e3, float64(s50-b50)/1e3)
		b.ReportMetric(float64(s50-b50)/1e3, name+"-added-p50-us")
	}
}
