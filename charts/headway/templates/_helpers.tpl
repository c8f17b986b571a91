{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "headway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: <release>-<chart>, or the release name when it already
contains the chart name.
*/}}
{{- define "headway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "headway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "headway.labels" -}}
helm.sh/chart: {{ include "headway.chart" . }}
{{ include "headway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: headway
{{- end }}

{{/*
Selector labels: stable for the life of a release (a Deployment's selector is immutable).
*/}}
{{- define "headway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "headway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "headway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "headway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "headway.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
"true" when kopf peering is on: explicitly, or implied by more than one replica (two
standalone kopf operators would both act on every object).
*/}}
{{- define "headway.peeringEnabled" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
"true" in cluster mode (no watchNamespaces): the operator watches every namespace.
*/}}
{{- define "headway.clusterwide" -}}
{{- if not .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
RBAC rules, least privilege: exactly the API calls the operator makes. Used by the ClusterRole
(cluster mode) and by the Role in each watched namespace (namespaced mode); the cluster-only
rules are added by the caller. Keep in sync with operator/headway (reconciler and k8s adapters).
*/}}
{{- define "headway.rbacRules" -}}
# The ModelDeployment resource: watched and reconciled; the operator patches its own
# annotations/finalizers (kopf) but never writes spec.
- apiGroups: ["serving.headway.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
# Its status subresource: the operator's only output on the resource.
- apiGroups: ["serving.headway.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["get", "patch", "update"]
# Children are created with ownerReferences.blockOwnerDeletion: where the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift), that needs
# update on the owner's finalizers subresource.
- apiGroups: ["serving.headway.dev"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
# Children of each ModelDeployment: workloads, Services, disruption budgets, autoscalers.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Traffic providers: Gateway API HTTPRoute or Istio VirtualService.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# KEDA autoscaling (requests per second, scale to zero).
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Scraping the model servers through prometheus-operator.
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Events about rollouts, verdicts and rollbacks (core and events.k8s.io APIs; kopf uses both).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
