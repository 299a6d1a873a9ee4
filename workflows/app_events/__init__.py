"""Our email events delivered to the apps' webhook endpoints (docs/webhooks.md).

`endpoints.AppWebhookEndpoints`: a tenant's endpoints (one entity workflow per tenant).
`delivery.AppEventDelivery`: one email's events to each subscribed endpoint, in order.
`emit.AppEvents`: how an email's workflow hands an event over (one local activity).
"""
