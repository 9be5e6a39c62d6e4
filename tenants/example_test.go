package tenants_test

import (
	"context"
	"fmt"

	"github.com/alert-domains/alert-domains/config"
	"github.com/alert-domains/alert-domains/connector"
	"github.com/alert-domains/alert-domains/message"
	"github.com/alert-domains/alert-domains/tenants"
)

// A request published to <REQUEST_SUBJECT>.contoso is looked up with
// contoso's own client; one that names a tenant not configured fails with
// the kind unknown_tenant.
func ExampleSet_Resolve() {
	list := []config.Tenant{
		{Name: "contoso", Credential: connector.CredentialConfig{TenantID: "contoso.onmicrosoft.com"}},
		{Name: "fabrikam", Credential: connector.CredentialConfig{TenantID: "fabrikam.onmicrosoft.com"}},
	}
	set, err := tenants.New(list, func(t *config.Tenant) (tenants.Lookup, error) {
		return answer("www." + t.Name + ".example"), nil // a *connector.Client in the service
	})
	if err != nil {
		panic(err)
	}
	name, named, _ := set.Resolve("contoso", "", "")
	res, _ := set.Domains(context.Background(), name, "da637472900382838869_1364969609")
	fmt.Println(name, named, res.Domains)
	_, _, err = set.Resolve("initech", "", "")
	fmt.Println(message.KindOf(err))
	// Output:
	// contoso true [www.contoso.example]
	// unknown_tenant
}
