//! Re-matching after a pass: the calls that new or changed Contacts, Leads or
//! Accounts may match better, within what is left of the job's deadline and
//! budget, reported in the sync status.

use super::*;

/// Objects whose new or changed records can give calls a better match.
pub(super) const REMATCH_ON: [&str; 3] = [
    objects::CONTACT.key,
    objects::LEAD.key,
    objects::ACCOUNT.key,
];

impl<'a, S: SyncStore, C: SalesforceSessions, Q: JobQueue> Syncer<'a, S, C, Q> {
    /// Re-matches the calls owed a pass (issue 19) with what is left of the job's
    /// time and budget; its API calls are reported in the sync status, under
    /// `rematch`. A pass cut short carries on in a continuation job.
    pub(super) async fn rematch(
        &self,
        session: &C::Session,
        previous: Option<&SyncStatus>,
        stop_at: Instant,
    ) -> Result<JobOutcome, WorkError> {
        let tenant = session.tenant();
        let owed = self
            .store
            .get_connection(tenant)
            .await?
            .is_some_and(|c| c.rematch.is_some());
        if !owed {
            return Ok(JobOutcome::Completed);
        }
        let started = Instant::now();
        let calls_before = self.salesforce.calls_made();
        let result = crate::calls::rematch::run(self.store, session, stop_at, || {
            self.over_budget(tenant).is_some()
        })
        .await;
        let calls = self.salesforce.calls_made() - calls_before;
        let duration_ms = started.elapsed().as_millis() as u64;
        let mut status = SyncStatus {
            api_calls: calls,
            duration_ms,
            total_records_read: previous.map_or(0, |p| p.total_records_read),
            total_api_calls: previous.map_or(0, |p| p.total_api_calls) + calls,
            ..SyncStatus::new(REMATCH_STATUS, SyncState::UpToDate)
        };
        let outcome = match &result {
            Ok(run) => {
                status.records_read = run.examined;
                status.records_written = run.rematched;
                status.total_records_read += run.examined;
                status.message = Some(format!(
                    "calls re-matched: {} of {} examined; {} Tasks left alone (changed or deleted in Salesforce)",
                    run.rematched, run.examined, run.left_alone
                ));
                match run.stopped {
                    None => JobOutcome::Completed,
                    Some(crate::calls::rematch::RematchStop::Deadline) => {
                        status.state = SyncState::Continuing;
                        let continuation = SyncJob::new(tenant.clone(), "continuation");
                        self.jobs
                            .send_all(&[TenantMessage::new(tenant, continuation.to_body())])
                            .await?;
                        JobOutcome::Continued
                    }
                    Some(crate::calls::rematch::RematchStop::Budget) => {
                        status.state = SyncState::Paused;
                        let used_percent = self.over_budget(tenant).unwrap_or_default();
                        status.message = Some(pause_message(
                            used_percent,
                            self.budget.sync_pause_at_percent,
                        ));
                        JobOutcome::Paused { used_percent }
                    }
                }
            }
            Err(e) => {
                status.state = SyncState::Failed;
                status.last_error = Some(e.to_string());
                JobOutcome::Completed
            }
        };
        // A pass with no call in its window leaves no status.
        let idle = matches!(&result, Ok(r) if r.examined == 0 && r.stopped.is_none());
        if !(idle && calls == 0) {
            self.store.put_sync_status(tenant, &status).await?;
        }
        match result {
            Err(e) if e.class() != ErrorClass::Permanent => Err(e),
            Err(e) => {
                tracing::error!(tenant_id = %tenant, error = %e, "re-matching failed");
                Ok(outcome)
            }
            Ok(_) => Ok(outcome),
        }
    }
}
