// A Benthos v4.27.0 binary with only the components the smsflow peer configs use.
package main

import (
	"context"

	_ "github.com/benthosdev/benthos/v4/public/components/cassandra"
	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/prometheus"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
	"github.com/benthosdev/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
