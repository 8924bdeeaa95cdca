# gateway/module.mk - maasd main, listeners, TLS, HTTP, auth, tenant API.
GATEWAY_SRCS := gateway/main.c gateway/http.c gateway/tls.c gateway/auth.c \
	gateway/kserve.c gateway/tensorjson.c gateway/meter.c gateway/work.c gateway/bootstrap.c \
	gateway/jwt.c gateway/guard.c gateway/quota.c gateway/price.c gateway/admit.c \
	gateway/metrics.c gateway/oaireq.c gateway/openai.c
