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
RBAC rules, least privilege: exactly the API calls the operator makes, the same in both modes.
Used by the ClusterRole (cluster mode) and by the Role in each watched namespace (namespaced
mode); nothing else is cluster-scoped, as kopf runs with scanning disabled (no CRD/namespace
list or watch; see operator/headway/handlers/settings.py). tests/e2e/test_rbac.py runs the
operator with these rules against an API server that enforces RBAC and checks that every
permission here is used, and nothing else.
*/}}
{{- define "headway.rbacRules" -}}
# The ModelDeployment resource: watched (kopf); reconciles read the watch cache. patch: kopf
# removes the finalizer Headway 0.1 put on every ModelDeployment (else they could never be
# deleted after an upgrade); the operator never writes spec.
- apiGroups: ["serving.headway.dev"]
  resources: ["modeldeployments"]
  verbs: ["list", "watch", "patch"]
# ModelApprovals (spec.governance): listed and watched into a cache, so that an approval queues
# the ModelDeployment it names; never written (approvers create them, the API server vouches).
- apiGroups: ["serving.headway.dev"]
  resources: ["modelapprovals"]
  verbs: ["list", "watch"]
# Its status subresource: the operator's only output on the resource (merge patch).
- apiGroups: ["serving.headway.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
# RolloutRecords, the durable decision record of each rollout (--rollout-records): listed and
# watched into a cache like children; created per rollout, grown by JSON patch, the oldest
# beyond the retention deleted. No get: a record is never looked up by name.
{{- if gt (int .Values.rolloutRecords) 0 }}
- apiGroups: ["serving.headway.dev"]
  resources: ["rolloutrecords"]
  verbs: ["list", "watch", "create", "patch", "delete"]
{{- end }}
# Children are created with ownerReferences.blockOwnerDeletion: where the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift), that needs
# update on the owner's finalizers subresource.
- apiGroups: ["serving.headway.dev"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
# Children, written with server-side apply (PATCH), pruned with DELETE. Every child kind is
# listed and watched (label selector app.kubernetes.io/managed-by=headway) into the operator's
# watch caches, which reconciles read; get: a child about to be created is first looked up by
# name, so that an object Headway does not own is never taken over.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# Traffic providers: Gateway API HTTPRoute or Istio VirtualService.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# One autoscaler per scaled variant: a HorizontalPodAutoscaler, or KEDA's ScaledObject.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# Scraping the model servers through prometheus-operator.
- apiGroups: ["monitoring.coreos.com"]
  resources: ["podmonitors"]
  verbs: ["get", "list", "watch", "patch", "delete"]
# spec.monitoring's reference profile: its ConfigMap is read (get, by name) when a drift check
# is due; ConfigMaps are neither listed nor watched.
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get"]
# Events about rollouts, verdicts and rollbacks: core/v1 Events, posted by the operator and
# by kopf (handler failures); always new ones (create), never patched.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
Governance: the ValidatingAdmissionPolicy (and its binding) that vouches for a ModelApproval's
approver, and the ConfigMap of roles it takes as params.
*/}}
{{- define "headway.approvalPolicyName" -}}
{{- printf "%s-approvals" (include "headway.fullname" .) | trunc 253 }}
{{- end }}

{{- define "headway.approvalRolesName" -}}
{{- printf "%s-approval-roles" (include "headway.fullname" .) | trunc 253 }}
{{- end }}

{{- define "headway.approverRoleName" -}}
{{- printf "%s-approver" (include "headway.fullname" .) | trunc 253 }}
{{- end }}

{{/*
The approver's rules: create ModelApprovals and read them back; read the ModelDeployments they
decide on (status.candidate shows the revision to approve). Never update or delete: an admitted
approval is a record.
*/}}
{{- define "headway.approverRules" -}}
- apiGroups: ["serving.headway.dev"]
  resources: ["modelapprovals"]
  verbs: ["create", "get", "list", "watch"]
- apiGroups: ["serving.headway.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch"]
{{- end }}
