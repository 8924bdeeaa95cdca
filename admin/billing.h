/* admin/billing.h - invoices, billing periods and usage reports.
 *
 *   GET  /admin/v1/invoices?period=YYYY-MM&tenant=&limit=&after=
 *        every tenant's invoice summary for a month (default: this one),
 *        paged by tenant id
 *   GET  /admin/v1/invoices/{tenant_id}/{period}[.csv]
 *        one invoice with its lines; CSV with ".csv" or Accept: text/csv
 *   GET  /admin/v1/billing/periods?limit=&after=	the closed periods
 *   POST /admin/v1/billing/periods/{period}/close
 *        freezes the month's invoices (only once the month is over)
 *   GET  /admin/v1/usage/report[.csv]?from=&to=&tenant=&model=&key=
 *        per tenant, model, key and UTC day
 *   GET  /admin/v1/usage/series?from=&to=&step=&tenant=
 *        per step (the dashboard's charts) and the top tenants
 *
 * Amounts are integer micro-units of the one currency.  An invoice's
 * lines always add up to the sum of cost_micros over its usage rows: the
 * gateway priced each request when it arrived, and db/ reprices the same
 * rows the same way (see BILL_LINES in db.c). */
#ifndef ADMIN_BILLING_H
#define ADMIN_BILLING_H
struct req;

void	admin_invoice_list(struct req *, char **arg);
void	admin_invoice_get(struct req *, char **arg);
void	admin_period_list(struct req *, char **arg);
void	admin_period_close(struct req *, char **arg);
void	admin_usage_report(struct req *, char **arg);
void	admin_usage_report_csv(struct req *, char **arg);
void	admin_usage_series(struct req *, char **arg);
#endif
