"""The search attributes of a send: the one list `make dev`, the tests, the bench and
docker-compose register. Values are plain text in Temporal: statuses, kinds and ids only,
never an address."""

from temporalio.common import SearchAttributeKey

EMAIL_STATUS = SearchAttributeKey.for_keyword("EmailStatus")
EMAIL_KIND = SearchAttributeKey.for_keyword("EmailKind")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
PROVIDER_MESSAGE_ID = SearchAttributeKey.for_keyword("ProviderMessageId")

ALL = (EMAIL_STATUS, EMAIL_KIND, TENANT_ID, PROVIDER_MESSAGE_ID)
# Names as `temporal operator search-attribute create --name` and the dev server take them.
NAMES = tuple(key.name for key in ALL)
