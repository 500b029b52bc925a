package otlp

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/agaobs/agaobs/internal/pipeline"
)

// producerResource describes one producer process with OpenTelemetry's
// semantic conventions (service, host, k8s, process, gen_ai).
func producerResource(p *pipeline.Producer, node string) *resource.Resource {
	id := p.Identity()
	service := "aga-core"
	if id != nil && id.Model != "" {
		service = clean(id.Model)
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", service),
		attribute.String("service.namespace", "aga"),
		attribute.String("service.instance.id", clean(node+"/"+p.Name)),
		attribute.String("host.name", node),
		attribute.Int("process.pid", p.HostPID),
		attribute.String("aga.producer", clean(p.Name)),
	}
	if p.PodUID != "" {
		attrs = append(attrs, attribute.String("k8s.pod.uid", p.PodUID))
	}
	if p.ContainerID != "" {
		attrs = append(attrs, attribute.String("container.id", p.ContainerID))
	}
	if id != nil {
		for _, kv := range []struct{ k, v string }{{"k8s.pod.name", id.Pod}, {"k8s.namespace.name", id.Namespace},
			{"k8s.container.name", id.Container}, {"gen_ai.request.model", id.Model}, {"aga.role", id.Role},
			{"aga.version", id.AGAVersion}, {"aga.device", id.Device}, {"process.executable.name", id.Process}} {
			if kv.v != "" {
				attrs = append(attrs, attribute.String(kv.k, clean(kv.v)))
			}
		}
		if id.Rank != nil {
			attrs = append(attrs, attribute.Int("aga.rank", *id.Rank))
		}
		if id.WorldSize != nil {
			attrs = append(attrs, attribute.Int("aga.world_size", *id.WorldSize))
		}
	}
	if p.PodUID != "" || (id != nil && id.Pod != "") {
		attrs = append(attrs, attribute.String("k8s.node.name", node))
	}
	return resource.NewSchemaless(attrs...)
}

// agentResource describes the agent itself.
func agentResource(node, version string) *resource.Resource {
	return resource.NewSchemaless(
		attribute.String("service.name", "agaobs-agent"),
		attribute.String("service.version", version),
		attribute.String("service.instance.id", node),
		attribute.String("host.name", node),
		attribute.String("k8s.node.name", node),
	)
}

// orphanResource describes a producer known only by name (an audit record
// of a producer the agent no longer tracks).
func orphanResource(name, node string) *resource.Resource {
	return resource.NewSchemaless(
		attribute.String("service.name", "aga-core"),
		attribute.String("service.namespace", "aga"),
		attribute.String("service.instance.id", node+"/"+name),
		attribute.String("host.name", node),
		attribute.String("aga.producer", name),
	)
}
