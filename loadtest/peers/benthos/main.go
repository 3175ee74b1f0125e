// A Benthos v4.27.0 binary with only the components the smsflow peer configs use: the minimal
// peer (http_server, kafka_franz, cassandra, bloblang) and the equal-work peer (also redis_script
// for dedupe and the per-sender rate limit, avro for single-object encoding).
package main

import (
	"context"

	_ "github.com/benthosdev/benthos/v4/public/components/avro"
	_ "github.com/benthosdev/benthos/v4/public/components/cassandra"
	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/prometheus"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
	_ "github.com/benthosdev/benthos/v4/public/components/redis"
	"github.com/benthosdev/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
