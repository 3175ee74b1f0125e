{{/* Names, labels and small helpers shared by every template. */}}

{{- define "smsflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "smsflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "smsflow.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "smsflow.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "smsflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "smsflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "smsflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smsflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* A role group's workload name: include "smsflow.groupName" (list $ "ingress") */}}
{{- define "smsflow.groupName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "smsflow.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "smsflow.groupSelector" -}}
{{- $root := index . 0 -}}
{{ include "smsflow.selectorLabels" $root }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "smsflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "smsflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image of a group: include "smsflow.image" (list $ $group) */}}
{{- define "smsflow.image" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $img := $root.Values.image -}}
{{- if eq ($group.image | default "default") "transcribe" -}}
{{- $img = $root.Values.transcribeImage -}}
{{- end -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/*
The port of a listener address of smsflow.toml: include "smsflow.podPort" (list "config.http.ops_addr" .Values.config.http.ops_addr)
In a pod the listener must take connections from outside it (the kubelet's probes, Prometheus,
the Service): any other address stops the render.
*/}}
{{- define "smsflow.podPort" -}}
{{- $key := index . 0 -}}
{{- $addr := toString (index . 1) -}}
{{- if not (regexMatch "^(0\\.0\\.0\\.0|\\[::\\]):[1-9][0-9]*$" $addr) -}}
{{- fail (printf "%s is %q: in a pod it must listen on every interface (0.0.0.0:PORT or [::]:PORT), or the kubelet's probes and Prometheus cannot reach it" $key $addr) -}}
{{- end -}}
{{- regexFind "[0-9]+$" $addr -}}
{{- end -}}

{{/*
A duration of smsflow.toml ("500ms", "10s", "2m", "1h") in whole seconds, rounded up.
Anything else stops the render: the grace-period check below must not guess.
*/}}
{{- define "smsflow.seconds" -}}
{{- $d := toString . -}}
{{- if regexMatch "^[0-9]+ms$" $d -}}
{{- div (add (trimSuffix "ms" $d | atoi) 999) 1000 -}}
{{- else if regexMatch "^[0-9]+s$" $d -}}
{{- trimSuffix "s" $d | atoi -}}
{{- else if regexMatch "^[0-9]+m$" $d -}}
{{- mul (trimSuffix "m" $d | atoi) 60 -}}
{{- else if regexMatch "^[0-9]+h$" $d -}}
{{- mul (trimSuffix "h" $d | atoi) 3600 -}}
{{- else -}}
{{- fail (printf "cannot read the duration %q: write it as Nms, Ns, Nm or Nh" $d) -}}
{{- end -}}
{{- end -}}

{{/*
How long a group needs after SIGTERM: HTTP drain (http.shutdown_grace) plus the producer
flush (5 s), or a stage's last transaction (stages.transaction_timeout), whichever is longer.
*/}}
{{- define "smsflow.drainSeconds" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $http := include "smsflow.seconds" (dig "http" "shutdown_grace" "10s" $root.Values.config) | atoi -}}
{{- $drain := add $http 5 -}}
{{- $stageRoles := list "media" "transcribe" "enrich" "notify" "confirm" "projector" -}}
{{- range $group.roles -}}
{{- if has . $stageRoles -}}
{{- $txn := include "smsflow.seconds" (dig "stages" "transaction_timeout" "30s" $root.Values.config) | atoi -}}
{{- $drain = max $drain $txn -}}
{{- if ne . "projector" -}}
{{- /* a stage's running inputs get stages.shutdown_grace, then the commit */ -}}
{{- $inputs := include "smsflow.seconds" (dig "stages" "shutdown_grace" "15s" $root.Values.config) | atoi -}}
{{- $drain = max $drain (add $inputs $txn) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $drain -}}
{{- end -}}

{{/* Kafka consumer groups a role group reads: include "smsflow.consumerGroups" (list $ $group) */}}
{{- define "smsflow.consumerGroups" -}}
{{- $root := index . 0 -}}
{{- $group := index . 1 -}}
{{- $prefix := dig "kafka" "topic_prefix" "" $root.Values.config -}}
{{- $groups := list -}}
{{- range $group.roles -}}
{{- if has . (list "media" "transcribe" "enrich" "notify" "confirm") -}}
{{- $groups = append $groups (printf "%ssmsflow-%s" $prefix .) -}}
{{- else if eq . "projector" -}}
{{- $groups = append $groups (dig "projector" "group_id" "smsflow-projector" $root.Values.config) -}}
{{- end -}}
{{- end -}}
{{- join "|" $groups -}}
{{- end -}}

{{/* smsflow.toml. Integral numbers stay integers: Helm reads every number as a float, and
smsflow refuses 4096.0 where it wants a count. */}}
{{- define "smsflow.configToml" -}}
{{- $config := deepCopy .Values.config -}}
{{- include "smsflow.integers" $config -}}
# Rendered by the smsflow chart from .Values.config; keys: smsflow.example.toml.
{{ toToml $config }}
{{- end -}}

{{- define "smsflow.integers" -}}
{{- range $k, $v := . -}}
{{- if and (kindIs "float64" $v) (eq $v (floor $v)) -}}
{{- $_ := set $ $k (int64 $v) -}}
{{- else if kindIs "map" $v -}}
{{- include "smsflow.integers" $v -}}
{{- end -}}
{{- end -}}
{{- end -}}
