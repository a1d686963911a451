"""The order-hub Chalice app: creates the app, registers middleware and blueprints. Nothing else."""

from chalice import Chalice

from chalicelib.entrypoints import (
    auth,
    connections_api,
    credit_api,
    http_api,
    openapi_document,
    operations_api,
    queue_handlers,
    reconciliation_api,
    return_tasks,
    returns_api,
    schedules,
    settings_api,
    status_page,
    status_returns,
    webhooks,
    workflow_tasks,
)

app = Chalice(app_name="order-hub")
app.register_middleware(auth.require_operator_token, "http")
app.register_blueprint(http_api.bp)
app.register_blueprint(connections_api.bp)
app.register_blueprint(webhooks.bp)
app.register_blueprint(operations_api.bp)
app.register_blueprint(queue_handlers.bp)
app.register_blueprint(workflow_tasks.bp)
app.register_blueprint(schedules.bp)
app.register_blueprint(reconciliation_api.bp)
app.register_blueprint(credit_api.bp)
app.register_blueprint(status_page.bp)
app.register_blueprint(status_returns.bp)
app.register_blueprint(returns_api.bp)
app.register_blueprint(return_tasks.bp)
app.register_blueprint(openapi_document.bp)
app.register_blueprint(settings_api.bp)
