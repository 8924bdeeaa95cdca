/* admin/openapi.c - see openapi.h.
 *
 * The paths come from admin_routes_each() (the router's own table); this
 * file only adds words and shapes: a summary, query parameters, request
 * and response schemas per route, looked up by method and pattern.  The
 * schemas are one JSON text (compact, so that it is checked whole by
 * json_loads at each request; the integration test validates the
 * document's references). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin.h"
#include "admin/openapi.h"
#include "common/log.h"
#include "gateway/http.h"

struct op_doc {
	const char	*method;
	const char	*pattern;
	const char	*summary;
	const char	*query;		/* comma-separated names, or NULL */
	const char	*request;	/* schema name, or NULL */
	const char	*response;	/* schema name; "Page:X" is a list of X */
	int		 status;	/* success status */
};

static const struct op_doc op_docs[] = {
	{ "GET", "tenants", "List tenants", "limit,after,status,plan",
	    NULL, "Page:Tenant", 200 },
	{ "POST", "tenants", "Create a tenant", NULL, "TenantCreate",
	    "Tenant", 201 },
	{ "GET", "tenants/*", "Get a tenant", NULL, NULL, "Tenant", 200 },
	{ "PATCH", "tenants/*", "Change a tenant's weight, plan or status", NULL,
	    "TenantPatch", "Tenant", 200 },
	{ "GET", "tenants/*/keys", "List a tenant's API keys",
	    "limit,after,status",
	    NULL, "Page:Key", 200 },
	{ "POST", "tenants/*/keys", "Issue an API key (secret shown once)",
	    NULL, "KeyCreate", "KeyCreated", 201 },
	{ "GET", "tenants/*/quota", "A tenant's quota (null: unlimited)",
	    NULL, NULL, "Quota", 200 },
	{ "PUT", "tenants/*/quota", "Set a tenant's quota (null: unlimited)",
	    NULL, "QuotaPut", "Quota", 200 },
	{ "POST", "tenants/*/suspend", "Suspend a tenant", NULL, NULL,
	    "Tenant", 200 },
	{ "POST", "tenants/*/resume", "Resume a suspended tenant", NULL, NULL,
	    "Tenant", 200 },
	{ "DELETE", "keys/*", "Revoke an API key at once", NULL, NULL, "Key",
	    200 },
	{ "GET", "keys/*/quota", "A key's own quota (null: the tenant's "
	    "limits apply)", NULL, NULL, "Quota", 200 },
	{ "PUT", "keys/*/quota", "Set a tighter quota for one key", NULL,
	    "QuotaPut", "Quota", 200 },
	{ "POST", "keys/*/rotate", "Rotate a key; the old one works until "
	    "the grace ends", NULL, "KeyRotate", "KeyRotated", 201 },
	{ "GET", "prices", "The price list, every version, by model and "
	    "start", "limit,after,model", NULL,
	    "Page:Price", 200 },
	{ "POST", "prices", "Add a price version of a model (from starts_at "
	    "on)", NULL, "PriceCreate", "Price", 201 },
	{ "GET", "issuers", "List JWT issuers", "limit,after", NULL,
	    "Page:Issuer", 200 },
	{ "POST", "issuers", "Register a JWT issuer key", NULL,
	    "IssuerCreate", "Issuer", 201 },
	{ "GET", "issuers/*", "Get a JWT issuer", NULL, NULL, "Issuer", 200 },
	{ "DELETE", "issuers/*", "Delete a JWT issuer key", NULL, NULL,
	    "Issuer", 200 },
	{ "GET", "models", "List registered model versions",
	    "limit,after,name",
	    NULL, "Page:Model", 200 },
	{ "POST", "models", "Register a model file", NULL, "ModelCreate",
	    "Model", 201 },
	{ "GET", "deployments", "List deployments with live state",
	    "limit,after,model", NULL, "Page:Deployment", 200 },
	{ "POST", "deployments", "Deploy a model version", NULL,
	    "DeploymentCreate", "Deployment", 201 },
	{ "GET", "deployments/*", "Get a deployment", NULL, NULL,
	    "Deployment", 200 },
	{ "PATCH", "deployments/*", "Scale a deployment", NULL,
	    "DeploymentPatch", "Deployment", 200 },
	{ "DELETE", "deployments/*", "Delete a deployment (drains first)",
	    NULL, NULL, "Deployment", 200 },
	{ "PUT", "deployments/*/traffic", "Set the versions and weights "
	    "(canary)", NULL, "Traffic", "Deployment", 200 },
	{ "POST", "deployments/*/rollback", "Back to the previous traffic "
	    "split", NULL, NULL, "Deployment", 200 },
	{ "GET", "usage", "Usage rows, one per request (order=desc: the "
	    "newest first)", "limit,after,tenant,model,key,status,from,to,order",
	    NULL,
	    "Page:UsageEvent", 200 },
	{ "GET", "usage/report", "Usage per tenant, model, key and UTC day "
	    "(JSON, or CSV with Accept: text/csv)",
	    "from,to,tenant,model,key,format", NULL, "UsageReport", 200 },
	{ "GET", "usage/report.csv", "The usage report as CSV",
	    "from,to,tenant,model,key", NULL, "csv", 200 },
	{ "GET", "usage/series", "Requests, errors, tokens and p50/p95/p99 "
	    "latency per step (default: per minute over the last 30), and the "
	    "top tenants", "from,to,step,tenant", NULL, "UsageSeries", 200 },
	{ "GET", "invoices", "Invoice summaries of a month, one per tenant",
	    "period,tenant,limit,after", NULL, "Page:Invoice", 200 },
	{ "GET", "invoices/*/*", "One invoice with its lines; CSV when the "
	    "period ends .csv or with Accept: text/csv", "format", NULL,
	    "Invoice", 200 },
	{ "GET", "billing/periods", "Closed billing periods, oldest first",
	    "limit,after", NULL,
	    "Page:Period", 200 },
	{ "POST", "billing/periods/*/close", "Close a month: its invoices "
	    "are frozen; late usage goes to the next open month", NULL, NULL,
	    "Period", 201 },
	{ "GET", "audit", "The audit log of every change",
	    "limit,after,action,target,actor,from,to", NULL,
	    "Page:AuditEntry", 200 },
	{ "GET", "openapi.json", "This document", NULL, NULL, "object",
	    200 },
};

static const struct {
	const char	*name;
	const char	*type;
	const char	*desc;
} query_docs[] = {
	{ "limit", "integer", "page size, 1-1000 (default 100)" },
	{ "after", "string", "cursor: the id of the last row of the previous "
	    "page (invoices: its tenant_id)" },
	{ "tenant", "string", "only this tenant id" },
	{ "model", "string", "only this model" },
	{ "key", "string", "only this API key id" },
	{ "status", "string", "only rows with this status" },
	{ "plan", "string", "only tenants on this plan" },
	{ "name", "string", "only this name" },
	{ "from", "string", "from this time on: Unix seconds, YYYY-MM-DD or "
	    "YYYY-MM-DDTHH:MM:SSZ (UTC)" },
	{ "to", "string", "before this time (same forms as from)" },
	{ "period", "string", "a calendar month (UTC) as YYYY-MM" },
	{ "action", "string", "an action (tenant.create) or its prefix "
	    "(tenant)" },
	{ "target", "string", "the id or name the change was made to" },
	{ "actor", "string", "who made the change" },
	{ "format", "string", "csv for CSV" },
	{ "step", "integer", "seconds per step, 1-86400 (default 60); at most "
	    "1440 steps" },
	{ "order", "string", "asc (default) or desc; with desc, after is the "
	    "id of the last (lowest) row seen" },
};

/* Path parameter names, by the segment before the "*". */
static const char *
param_name(const char *prev, int nth)
{
	if (strcmp(prev, "tenants") == 0)
		return "tenant_id";
	if (strcmp(prev, "keys") == 0)
		return "key_id";
	if (strcmp(prev, "issuers") == 0)
		return "issuer_id";
	if (strcmp(prev, "deployments") == 0)
		return "name";
	if (strcmp(prev, "periods") == 0)
		return "period";
	if (strcmp(prev, "invoices") == 0)
		return "tenant_id";
	return nth > 0 ? "period" : "id";
}

static const char openapi_schemas[] =
	"{\"Error\":{\"type\":\"object\",\"properties\":{\"error\":{\"type\":\"obje"
	"ct\",\"properties\":{\"message\":{\"type\":\"string\"},\"type\":{\"type\":"
	"\"string\"},\"param\":{\"type\":\"string\",\"nullable\":true},\"code\":{\""
	"type\":\"string\",\"nullable\":true}},\"required\":[\"message\",\"type\"]}"
	"},\"required\":[\"error\"]},\"Tenant\":{\"type\":\"object\",\"properties\""
	":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"status\":{"
	"\"type\":\"string\",\"enum\":[\"active\",\"suspended\"]},\"plan\":{\"type"
	"\":\"string\"},\"weight\":{\"type\":\"integer\"},\"created_at\":{\"type\":"
	"\"integer\"}}},\"TenantCreate\":{\"type\":\"object\",\"properties\":{\"nam"
	"e\":{\"type\":\"string\"}},\"required\":[\"name\"]},\"TenantPatch\":{\"typ"
	"e\":\"object\",\"properties\":{\"weight\":{\"type\":\"integer\",\"minimum"
	"\":1,\"maximum\":1000},\"plan\":{\"type\":\"string\"},\"status\":{\"type\""
	":\"string\",\"enum\":[\"active\",\"suspended\"]}}},\"Key\":{\"type\":\"obj"
	"ect\",\"properties\":{\"id\":{\"type\":\"string\"},\"tenant_id\":{\"type\""
	":\"string\"},\"name\":{\"type\":\"string\"},\"prefix\":{\"type\":\"string"
	"\"},\"scopes\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"nulla"
	"ble\":true},\"created_at\":{\"type\":\"integer\"},\"expires_at\":{\"type\""
	":\"integer\",\"nullable\":true},\"revoked_at\":{\"type\":\"integer\",\"nul"
	"lable\":true},\"last_used_at\":{\"type\":\"integer\",\"nullable\":true},\""
	"replaced_by\":{\"type\":\"string\",\"nullable\":true}}},\"KeyCreated\":{\""
	"allOf\":[{\"$ref\":\"#/components/schemas/Key\"},{\"type\":\"object\",\"pr"
	"operties\":{\"key\":{\"type\":\"string\",\"description\":\"the secret, sho"
	"wn once (a replay with the same Idempotency-Key returns null)\"}}}]},\"Key"
	"Create\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string"
	"\"},\"expires_at\":{\"type\":\"integer\",\"nullable\":true},\"scopes\":{\""
	"type\":\"array\",\"items\":{\"type\":\"string\"},\"nullable\":true}}},\"Ke"
	"yRotate\":{\"type\":\"object\",\"properties\":{\"grace_seconds\":{\"type\""
	":\"integer\",\"minimum\":0}}},\"KeyRotated\":{\"allOf\":[{\"$ref\":\"#/com"
	"ponents/schemas/KeyCreated\"},{\"type\":\"object\",\"properties\":{\"previ"
	"ous_key_expires_at\":{\"type\":\"integer\"}}}]},\"Quota\":{\"type\":\"obje"
	"ct\",\"properties\":{\"tenant_id\":{\"type\":\"string\"},\"key_id\":{\"typ"
	"e\":\"string\",\"nullable\":true},\"requests_per_minute\":{\"type\":\"inte"
	"ger\",\"nullable\":true},\"tokens_per_minute\":{\"type\":\"integer\",\"nul"
	"lable\":true},\"max_concurrent_requests\":{\"type\":\"integer\",\"nullable"
	"\":true},\"monthly_token_budget\":{\"type\":\"integer\",\"nullable\":true}"
	",\"monthly_credit_budget_micros\":{\"type\":\"integer\",\"nullable\":true}"
	",\"allowed_models\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\""
	"nullable\":true},\"set\":{\"type\":\"boolean\",\"description\":\"false: no"
	" quota was set (every limit null)\"}}},\"QuotaPut\":{\"type\":\"object\","
	"\"properties\":{\"requests_per_minute\":{\"type\":\"integer\",\"nullable\""
	":true},\"tokens_per_minute\":{\"type\":\"integer\",\"nullable\":true},\"ma"
	"x_concurrent_requests\":{\"type\":\"integer\",\"nullable\":true},\"monthly"
	"_token_budget\":{\"type\":\"integer\",\"nullable\":true},\"monthly_credit_"
	"budget_micros\":{\"type\":\"integer\",\"nullable\":true},\"allowed_models"
	"\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"nullable\":true}}"
	"},\"Issuer\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"strin"
	"g\"},\"kid\":{\"type\":\"string\"},\"alg\":{\"type\":\"string\"},\"iss\":{"
	"\"type\":\"string\"},\"aud\":{\"type\":\"string\",\"nullable\":true},\"ten"
	"ant_claim\":{\"type\":\"string\"},\"key_fingerprint\":{\"type\":\"string\""
	"},\"created_at\":{\"type\":\"integer\"},\"deleted_at\":{\"type\":\"integer"
	"\",\"nullable\":true}}},\"IssuerCreate\":{\"type\":\"object\",\"properties"
	"\":{\"kid\":{\"type\":\"string\"},\"alg\":{\"type\":\"string\",\"enum\":["
	"\"HS256\",\"RS256\",\"ES256\"]},\"key\":{\"type\":\"string\"},\"iss\":{\"t"
	"ype\":\"string\"},\"aud\":{\"type\":\"string\",\"nullable\":true},\"tenant"
	"_claim\":{\"type\":\"string\"}},\"required\":[\"kid\",\"alg\",\"key\",\"is"
	"s\"]},\"Model\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"st"
	"ring\"},\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
	"\"format\":{\"type\":\"string\",\"enum\":[\"onnx\",\"gguf\"]},\"path\":{\""
	"type\":\"string\"},\"sha256\":{\"type\":\"string\"},\"size\":{\"type\":\"i"
	"nteger\"},\"meta\":{\"type\":\"object\"},\"created_at\":{\"type\":\"intege"
	"r\"}}},\"ModelCreate\":{\"type\":\"object\",\"properties\":{\"name\":{\"ty"
	"pe\":\"string\"},\"version\":{\"type\":\"string\"},\"path\":{\"type\":\"st"
	"ring\"}},\"required\":[\"name\",\"version\",\"path\"]},\"TrafficEntry\":{"
	"\"type\":\"object\",\"properties\":{\"version\":{\"type\":\"string\"},\"we"
	"ight\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000},\"replicas\":"
	"{\"type\":\"integer\"}}},\"Deployment\":{\"type\":\"object\",\"properties"
	"\":{\"id\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},\"model\":"
	"{\"type\":\"string\"},\"version\":{\"type\":\"string\"},\"replicas\":{\"ty"
	"pe\":\"integer\"},\"min_replicas\":{\"type\":\"integer\"},\"max_replicas\""
	":{\"type\":\"integer\"},\"threads\":{\"type\":\"integer\"},\"max_batch\":{"
	"\"type\":\"integer\"},\"max_queue_delay_us\":{\"type\":\"integer\"},\"stat"
	"us\":{\"type\":\"string\"},\"created_at\":{\"type\":\"integer\"},\"traffic"
	"\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/TrafficE"
	"ntry\"}},\"prev_traffic\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/comp"
	"onents/schemas/TrafficEntry\"},\"nullable\":true},\"ready\":{\"type\":\"bo"
	"olean\"},\"live_replicas\":{\"type\":\"integer\"},\"state\":{\"type\":\"st"
	"ring\"}}},\"DeploymentCreate\":{\"type\":\"object\",\"properties\":{\"name"
	"\":{\"type\":\"string\"},\"model\":{\"type\":\"string\"},\"version\":{\"ty"
	"pe\":\"string\"},\"replicas\":{\"type\":\"integer\"},\"min_replicas\":{\"t"
	"ype\":\"integer\"},\"max_replicas\":{\"type\":\"integer\"},\"threads\":{\""
	"type\":\"integer\"},\"max_batch\":{\"type\":\"integer\"},\"max_queue_delay"
	"_us\":{\"type\":\"integer\"}},\"required\":[\"name\",\"model\",\"version\""
	"]},\"DeploymentPatch\":{\"type\":\"object\",\"properties\":{\"replicas\":{"
	"\"type\":\"integer\"},\"min_replicas\":{\"type\":\"integer\"},\"max_replic"
	"as\":{\"type\":\"integer\"}}},\"Traffic\":{\"type\":\"object\",\"propertie"
	"s\":{\"versions\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/s"
	"chemas/TrafficEntry\"}}},\"required\":[\"versions\"]},\"Price\":{\"type\":"
	"\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"description\":\"<"
	"model>:<starts_at>, the list's cursor\"},\"model\":{\"type\":\"string\"},"
	"\"starts_at\":{\"type\":\"integer\"},\"per_1k_input_micros\":{\"type\":\"i"
	"nteger\"},\"per_1k_output_micros\":{\"type\":\"integer\"},\"per_request_mi"
	"cros\":{\"type\":\"integer\"},\"per_compute_second_micros\":{\"type\":\"in"
	"teger\"}}},\"PriceCreate\":{\"type\":\"object\",\"properties\":{\"model\":"
	"{\"type\":\"string\"},\"starts_at\":{\"type\":\"integer\"},\"per_1k_input_"
	"micros\":{\"type\":\"integer\"},\"per_1k_output_micros\":{\"type\":\"integ"
	"er\"},\"per_request_micros\":{\"type\":\"integer\"},\"per_compute_second_m"
	"icros\":{\"type\":\"integer\"}},\"required\":[\"model\"]},\"UsageEvent\":{"
	"\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"reques"
	"t_id\":{\"type\":\"string\"},\"ts_us\":{\"type\":\"integer\"},\"tenant_id"
	"\":{\"type\":\"string\"},\"key_id\":{\"type\":\"string\",\"nullable\":true"
	"},\"model\":{\"type\":\"string\"},\"version\":{\"type\":\"string\",\"nulla"
	"ble\":true},\"endpoint\":{\"type\":\"string\"},\"status\":{\"type\":\"inte"
	"ger\"},\"queue_us\":{\"type\":\"integer\"},\"compute_us\":{\"type\":\"inte"
	"ger\"},\"bytes_in\":{\"type\":\"integer\"},\"bytes_out\":{\"type\":\"integ"
	"er\"},\"prompt_tokens\":{\"type\":\"integer\"},\"completion_tokens\":{\"ty"
	"pe\":\"integer\"},\"cost_micros\":{\"type\":\"integer\"}}},\"UsageReportRo"
	"w\":{\"type\":\"object\",\"properties\":{\"day\":{\"type\":\"string\",\"fo"
	"rmat\":\"date\"},\"tenant_id\":{\"type\":\"string\"},\"model\":{\"type\":"
	"\"string\"},\"key_id\":{\"type\":\"string\",\"nullable\":true},\"requests"
	"\":{\"type\":\"integer\"},\"errors\":{\"type\":\"integer\"},\"input_tokens"
	"\":{\"type\":\"integer\"},\"output_tokens\":{\"type\":\"integer\"},\"laten"
	"cy_p50_us\":{\"type\":\"integer\",\"nullable\":true},\"latency_p95_us\":{"
	"\"type\":\"integer\",\"nullable\":true},\"latency_p99_us\":{\"type\":\"int"
	"eger\",\"nullable\":true}}},\"UsageReport\":{\"type\":\"object\",\"propert"
	"ies\":{\"object\":{\"type\":\"string\"},\"from\":{\"type\":\"integer\"},\""
	"to\":{\"type\":\"integer\"},\"latency\":{\"type\":\"string\"},\"data\":{\""
	"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/UsageReportRow"
	"\"}}}},\"InvoiceLine\":{\"type\":\"object\",\"properties\":{\"kind\":{\"ty"
	"pe\":\"string\",\"enum\":[\"usage\",\"adjustment\"]},\"for_period\":{\"typ"
	"e\":\"string\",\"nullable\":true},\"model\":{\"type\":\"string\"},\"unit\""
	":{\"type\":\"string\",\"enum\":[\"requests\",\"input_tokens\",\"output_tok"
	"ens\",\"compute_seconds\",\"budget_cap\"]},\"quantity\":{\"type\":\"intege"
	"r\"},\"quantity_unit\":{\"type\":\"string\"},\"unit_price_micros\":{\"type"
	"\":\"integer\"},\"price_per\":{\"type\":\"string\"},\"price_starts_at\":{"
	"\"type\":\"integer\",\"nullable\":true},\"amount_micros\":{\"type\":\"inte"
	"ger\"}}},\"Invoice\":{\"type\":\"object\",\"properties\":{\"object\":{\"ty"
	"pe\":\"string\"},\"tenant_id\":{\"type\":\"string\"},\"tenant_name\":{\"ty"
	"pe\":\"string\"},\"period\":{\"type\":\"string\"},\"status\":{\"type\":\"s"
	"tring\",\"enum\":[\"open\",\"closed\"]},\"closed_at\":{\"type\":\"integer"
	"\",\"nullable\":true},\"period_start\":{\"type\":\"integer\"},\"period_end"
	"\":{\"type\":\"integer\"},\"currency_unit\":{\"type\":\"string\"},\"usage_"
	"micros\":{\"type\":\"integer\"},\"adjustments_micros\":{\"type\":\"integer"
	"\"},\"total_micros\":{\"type\":\"integer\"},\"line_count\":{\"type\":\"int"
	"eger\"},\"lines\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/s"
	"chemas/InvoiceLine\"}}}},\"Period\":{\"type\":\"object\",\"properties\":{"
	"\"id\":{\"type\":\"string\",\"description\":\"the period, the list's curso"
	"r\"},\"period\":{\"type\":\"string\"},\"idx\":{\"type\":\"integer\"},\"sta"
	"rt_us\":{\"type\":\"integer\"},\"end_us\":{\"type\":\"integer\"},\"last_us"
	"age_id\":{\"type\":\"integer\"},\"closed_at\":{\"type\":\"integer\"},\"sta"
	"tus\":{\"type\":\"string\"}}},\"AuditEntry\":{\"type\":\"object\",\"proper"
	"ties\":{\"id\":{\"type\":\"integer\"},\"ts\":{\"type\":\"integer\"},\"acto"
	"r\":{\"type\":\"string\"},\"action\":{\"type\":\"string\"},\"target\":{\"t"
	"ype\":\"string\",\"nullable\":true},\"detail\":{\"type\":\"object\",\"null"
	"able\":true}}},\"UsageSeriesPoint\":{\"type\":\"object\",\"properties\":{"
	"\"t\":{\"type\":\"integer\",\"description\":\"start of the step, Unix seco"
	"nds\"},\"requests\":{\"type\":\"integer\"},\"errors\":{\"type\":\"integer"
	"\"},\"input_tokens\":{\"type\":\"integer\"},\"output_tokens\":{\"type\":\""
	"integer\"},\"cost_micros\":{\"type\":\"integer\"},\"latency_p50_us\":{\"ty"
	"pe\":\"integer\",\"nullable\":true},\"latency_p95_us\":{\"type\":\"integer"
	"\",\"nullable\":true},\"latency_p99_us\":{\"type\":\"integer\",\"nullable"
	"\":true}}},\"TopTenant\":{\"type\":\"object\",\"properties\":{\"tenant_id"
	"\":{\"type\":\"string\"},\"requests\":{\"type\":\"integer\"},\"errors\":{"
	"\"type\":\"integer\"},\"input_tokens\":{\"type\":\"integer\"},\"output_tok"
	"ens\":{\"type\":\"integer\"},\"cost_micros\":{\"type\":\"integer\"}}},\"Us"
	"ageSeries\":{\"type\":\"object\",\"properties\":{\"object\":{\"type\":\"st"
	"ring\"},\"from\":{\"type\":\"integer\"},\"to\":{\"type\":\"integer\"},\"st"
	"ep\":{\"type\":\"integer\"},\"latency\":{\"type\":\"string\"},\"data\":{\""
	"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/UsageSeriesPoi"
	"nt\"}},\"top_tenants\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/compone"
	"nts/schemas/TopTenant\"}}}},\"Page\":{\"type\":\"object\",\"properties\":{"
	"\"object\":{\"type\":\"string\"},\"data\":{\"type\":\"array\",\"items\":{}"
	"},\"has_more\":{\"type\":\"boolean\"}}}}";

struct build {
	json_t	*paths;
	json_t	*schemas;
};

static json_t *
error_response(const char *desc)
{
	return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", desc,
	    "content", "application/json", "schema", "$ref",
	    "#/components/schemas/Error");
}

static json_t *
schema_ref(const char *name)
{
	char	ref[128];

	if (strncmp(name, "Page:", 5) == 0) {
		snprintf(ref, sizeof(ref), "#/components/schemas/%s", name + 5);
		return json_pack("{s:[{s:s}, {s:{s:{s:{s:s}}}}]}", "allOf",
		    "$ref", "#/components/schemas/Page", "properties", "data",
		    "items", "$ref", ref);
	}
	if (strcmp(name, "object") == 0)
		return json_pack("{s:s}", "type", "object");
	snprintf(ref, sizeof(ref), "#/components/schemas/%s", name);
	return json_pack("{s:s}", "$ref", ref);
}

static void
add_route(void *arg, const char *method, const char *pattern)
{
	struct build		*b = arg;
	const struct op_doc	*d = NULL;
	json_t			*item, *op, *params, *resp, *content;
	char			 path[256], pat[128], lower[16];
	char			*seg, *save = NULL, prev[64] = "";
	size_t			 i, off;
	int			 nth = 0;

	for (i = 0; i < sizeof(op_docs) / sizeof(op_docs[0]); i++)
		if (strcmp(op_docs[i].method, method) == 0 &&
		    strcmp(op_docs[i].pattern, pattern) == 0)
			d = &op_docs[i];
	params = json_array();
	off = (size_t)snprintf(path, sizeof(path), "/admin/v1");
	snprintf(pat, sizeof(pat), "%s", pattern);
	for (seg = strtok_r(pat, "/", &save); seg != NULL && off <
	    sizeof(path); seg = strtok_r(NULL, "/", &save)) {
		if (strcmp(seg, "*") == 0) {
			const char	*n = param_name(prev, nth++);

			off += (size_t)snprintf(path + off, sizeof(path) - off,
			    "/{%s}", n);
			json_array_append_new(params, json_pack("{s:s, s:s,"
			    " s:b, s:{s:s}}", "name", n, "in", "path",
			    "required", 1, "schema", "type", "string"));
		} else
			off += (size_t)snprintf(path + off, sizeof(path) - off,
			    "/%s", seg);
		snprintf(prev, sizeof(prev), "%s", seg);
	}
	if (d != NULL && d->query != NULL) {
		char	q[256], *name, *qs = NULL;

		snprintf(q, sizeof(q), "%s", d->query);
		for (name = strtok_r(q, ",", &qs); name != NULL;
		    name = strtok_r(NULL, ",", &qs))
			for (i = 0; i < sizeof(query_docs) /
			    sizeof(query_docs[0]); i++)
				if (strcmp(query_docs[i].name, name) == 0)
					json_array_append_new(params,
					    json_pack("{s:s, s:s, s:s, s:{s:s}}",
					    "name", name, "in", "query",
					    "description", query_docs[i].desc,
					    "schema", "type",
					    query_docs[i].type));
	}
	op = json_object();
	json_object_set_new(op, "summary", json_string(d != NULL ?
	    d->summary : pattern));
	if (d == NULL)
		json_object_set_new(op, "x-undocumented", json_true());
	json_object_set_new(op, "parameters", params);
	if (d != NULL && d->request != NULL)
		json_object_set_new(op, "requestBody", json_pack("{s:b, s:{s:"
		    "{s:o}}}", "required", 1, "content", "application/json",
		    "schema", schema_ref(d->request)));
	if (d != NULL && strcmp(d->response, "csv") == 0)
		content = json_pack("{s:{s:{s:s}}}", "text/csv", "schema",
		    "type", "string");
	else
		content = json_pack("{s:{s:o}}", "application/json", "schema",
		    schema_ref(d != NULL ? d->response : "object"));
	resp = json_object();
	snprintf(lower, sizeof(lower), "%d", d != NULL ? d->status : 200);
	json_object_set_new(resp, lower, json_pack("{s:s, s:o}",
	    "description", "success", "content", content));
	json_object_set_new(resp, "400", error_response("invalid request"));
	json_object_set_new(resp, "401", error_response("missing or wrong "
	    "admin token"));
	json_object_set_new(resp, "404", error_response("no such object"));
	if (strcmp(method, "POST") == 0) {
		json_object_set_new(resp, "409", error_response("conflict, or "
		    "Idempotency-Key reused with another request"));
		json_array_append_new(params, json_pack("{s:s, s:s, s:s, s:{s:s}}",
		    "name", "Idempotency-Key", "in", "header", "description",
		    "a replay with the same key and body returns the first "
		    "response and changes nothing", "schema", "type",
		    "string"));
	}
	json_object_set_new(op, "responses", resp);
	if ((item = json_object_get(b->paths, path)) == NULL) {
		item = json_object();
		json_object_set_new(b->paths, path, item);
	}
	for (i = 0; method[i] != '\0' && i + 1 < sizeof(lower); i++)
		lower[i] = (char)(method[i] | 0x20);
	lower[i] = '\0';
	json_object_set_new(item, lower, op);
}

json_t *
admin_openapi_doc(void)
{
	struct build	 b;
	json_error_t	 err;
	json_t		*doc;

	if ((b.schemas = json_loads(openapi_schemas, 0, &err)) == NULL) {
		log_warnx("openapi: built-in schemas do not parse: %s at %d",
		    err.text, err.position);
		return NULL;
	}
	b.paths = json_object();
	admin_routes_each(add_route, &b);
	/* Outside /admin/v1 but on the admin port with the same token. */
	json_object_set_new(b.paths, "/metrics", json_pack("{s:{s:s, s:{s:{s:s,"
	    " s:{s:{s:{s:s}}}}}}}", "get", "summary", "Prometheus metrics "
	    "(text format 0.0.4)", "responses", "200", "description",
	    "success", "content", "text/plain", "schema", "type", "string"));
	doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:o,"
	    " s:{s:{s:s, s:s}}}, s:[{s:[]}]}",
	    "openapi", "3.0.3",
	    "info", "title", "maas admin API", "version", "1",
	    "description", "Every change is audited; amounts are integer "
	    "micro-units; lists page with limit and after.",
	    "servers", "url", "/",
	    "paths", b.paths,
	    "components", "schemas", b.schemas, "securitySchemes",
	    "adminToken", "type", "http", "scheme", "bearer",
	    "security", "adminToken");
	return doc;
}

void
admin_openapi(struct req *r, char **arg)
{
	json_t	*doc = admin_openapi_doc();

	(void)arg;
	if (doc == NULL) {
		http_error(r, 500, "internal_error", NULL,
		    "cannot build the document");
		return;
	}
	http_reply_json(r, 200, doc);
}
