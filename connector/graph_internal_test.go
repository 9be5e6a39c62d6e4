package connector

import (
	"os"
	"reflect"
	"testing"
)

// TestReadDocsAlert: Microsoft's example alert is a Graph alert object
// whose evidence (a device, a file, a process, a registry key) holds no
// domain.
func TestReadDocsAlert(t *testing.T) {
	body, err := os.ReadFile("testdata/graph/docs-example.json")
	if err != nil {
		t.Fatal(err)
	}
	var hosts hostSet
	next, e := graphWire{}.read(body, &hosts)
	if e != nil || next != "" || !reflect.DeepEqual(hosts.result(), []string{}) {
		t.Errorf("read = %q, %q, %v", hosts.result(), next, e)
	}
}

// BenchmarkReadGraphAlert is the cost of reading Microsoft's example
// alert (4 evidence items, 6 KiB) and an alert with every evidence type;
// BenchmarkReadMDEPage that of the endpoint API's documented answer.
func BenchmarkReadGraphAlert(b *testing.B) {
	for _, name := range []string{"docs-example", "every-evidence-type"} {
		b.Run(name, func(b *testing.B) {
			body, err := os.ReadFile("testdata/graph/" + name + ".json")
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var hosts hostSet
				if _, err := (graphWire{}).read(body, &hosts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadMDEPage(b *testing.B) {
	body := []byte(`{"@odata.context":"https://api.securitycenter.microsoft.com/api/$metadata#Domains","value":[{"host":"www.example.com"},{"host":"www.example2.com"}]}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var hosts hostSet
		if _, err := (mdeWire{}).read(body, &hosts); err != nil {
			b.Fatal(err)
		}
	}
}
