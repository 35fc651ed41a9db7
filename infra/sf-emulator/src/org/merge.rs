//! Merges and Lead conversions, as Salesforce does them.
//!
//! A merge keeps the master and deletes the others (at most two), each with
//! `MasterRecordId` set to the master; Salesforce itself moves the losers' related
//! records (Tasks, a contact's roles, an account's contacts and opportunities) to
//! the master first. Change Data Capture sees updates of the moved records, a
//! DELETE per loser and an UPDATE of the master.
//!
//! A conversion creates an account, a contact and (optionally) an opportunity
//! from the lead, moves the lead's Tasks to the contact (and, where they had no
//! related record, to the opportunity, else the account), then marks the lead
//! `IsConverted` with `ConvertedContactId`, `ConvertedAccountId` and
//! `ConvertedOpportunityId`: it stays queryable, no longer editable.

use super::*;

/// What a conversion created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Converted {
    pub account: RecordId,
    pub contact: RecordId,
    pub opportunity: Option<RecordId>,
}

fn refused(code: &'static str, message: impl Into<String>) -> RecError {
    RecError::new(code, message, vec![])
}

impl Org {
    /// Merges `losers` into `master` (one object: Account, Contact or Lead).
    pub fn merge(
        &mut self,
        master: RecordId,
        losers: &[RecordId],
        ctx: &WriteCtx,
    ) -> Result<(), RecError> {
        let schema = Schema::get();
        let obj = schema.at(master.obj());
        let related: &[(&str, &str)] = match obj.name {
            "Contact" => &[("Task", "WhoId"), ("OpportunityContactRole", "ContactId")],
            "Lead" => &[("Task", "WhoId")],
            "Account" => &[
                ("Task", "WhatId"),
                ("Contact", "AccountId"),
                ("Opportunity", "AccountId"),
            ],
            other => {
                return Err(refused(
                    "INVALID_TYPE_FOR_OPERATION",
                    format!("entity type {other} does not support merge"),
                ));
            }
        };
        if losers.is_empty() || losers.len() > 2 {
            return Err(refused(
                "INVALID_OPERATION",
                "a merge takes a master and one or two other records",
            ));
        }
        for l in losers.iter().chain([&master]) {
            if l.obj() != master.obj() || !self.is_live(*l) {
                return Err(refused(
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                ));
            }
        }
        if losers.contains(&master) {
            return Err(refused(
                "INVALID_OPERATION",
                "the master cannot be merged into itself",
            ));
        }
        let sp = self.savepoint();
        let result = self.merge_into(obj, related, master, losers, ctx);
        match result {
            Ok(()) => self.release(sp),
            Err(_) => self.rollback(sp),
        }
        self.cdc_flush(None);
        result
    }

    fn merge_into(
        &mut self,
        obj: &ObjectDef,
        related: &[(&str, &str)],
        master: RecordId,
        losers: &[RecordId],
        ctx: &WriteCtx,
    ) -> Result<(), RecError> {
        for &loser in losers {
            for (child, field) in related {
                self.move_related(child, field, loser, master, None, ctx)?;
            }
            if let Some(c) = obj.col("MasterRecordId") {
                self.set_cell(loser.obj(), c, loser.row(), Value::Ref(master));
            }
            self.delete(loser, ctx)?;
        }
        // The master is saved too (its LastModifiedDate moves).
        self.update(master, Vec::new(), ctx)
    }

    /// Points `child.field` from `from` to `to`; where `also` is given, sets that
    /// field of the same records too when it is empty.
    fn move_related(
        &mut self,
        child: &str,
        field: &str,
        from: RecordId,
        to: RecordId,
        also: Option<(&str, RecordId)>,
        ctx: &WriteCtx,
    ) -> Result<(), RecError> {
        let schema = Schema::get();
        let Some(cobj) = schema.object(child) else {
            return Ok(());
        };
        let (Some(col), Some(&fi)) = (
            cobj.col(field),
            cobj.by_name.get(&field.to_ascii_lowercase()),
        ) else {
            return Ok(());
        };
        let kids: Vec<RecordId> = {
            let t = &self.tables[cobj.index];
            (0..t.len())
                .filter(|r| !t.is_deleted(*r) && t.get(col, *r) == ValueRef::Ref(from))
                .map(|r| RecordId::new(cobj.index, r as u64 + 1))
                .collect()
        };
        for k in kids {
            let mut fields = vec![(fi, Value::Ref(to))];
            if let Some((other, value)) = also {
                if let (Some(oc), Some(&ofi)) = (
                    cobj.col(other),
                    cobj.by_name.get(&other.to_ascii_lowercase()),
                ) {
                    if self.tables[cobj.index].get(oc, k.row()) == ValueRef::Null {
                        fields.push((ofi, Value::Ref(value)));
                    }
                }
            }
            self.update(k, fields, ctx)?;
        }
        Ok(())
    }

    /// Converts a lead: account, contact and, when asked, an opportunity.
    pub fn convert_lead(
        &mut self,
        lead: RecordId,
        opportunity: bool,
        ctx: &WriteCtx,
    ) -> Result<Converted, RecError> {
        let schema = Schema::get();
        if schema.at(lead.obj()).name != "Lead" || !self.is_live(lead) {
            return Err(refused(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            ));
        }
        if self.get(lead, "IsConverted") == ValueRef::Bool(true) {
            return Err(refused(
                "INVALID_STATUS",
                "the lead has already been converted",
            ));
        }
        let sp = self.savepoint();
        let result = self.convert(lead, opportunity, ctx);
        match result {
            Ok(_) => self.release(sp),
            Err(_) => self.rollback(sp),
        }
        self.cdc_flush(None);
        result
    }

    fn convert(
        &mut self,
        lead: RecordId,
        opportunity: bool,
        ctx: &WriteCtx,
    ) -> Result<Converted, RecError> {
        let schema = Schema::get();
        let text = |org: &Org, f: &str| -> Value {
            org.text(lead, f)
                .map(|s| Value::Text(s.into()))
                .unwrap_or(Value::Null)
        };
        let index = |object: &str, field: &str| -> Result<(usize, usize), RecError> {
            let o = schema
                .object(object)
                .ok_or_else(|| refused("INVALID_TYPE", format!("no object {object}")))?;
            let fi = *o
                .by_name
                .get(&field.to_ascii_lowercase())
                .ok_or_else(|| refused("INVALID_FIELD", format!("no field {object}.{field}")))?;
            Ok((o.index, fi))
        };
        let company = text(self, "Company");
        let (account_obj, name) = index("Account", "Name")?;
        let account = self.create(account_obj, vec![(name, company.clone())], ctx)?;
        let mut contact_fields = Vec::new();
        let mut contact_obj = 0;
        for f in ["FirstName", "LastName", "Email", "Phone", "MobilePhone"] {
            let (o, fi) = index("Contact", f)?;
            contact_obj = o;
            let v = text(self, f);
            if !v.is_null() {
                contact_fields.push((fi, v));
            }
        }
        contact_fields.push((index("Contact", "AccountId")?.1, Value::Ref(account)));
        let contact = self.create(contact_obj, contact_fields, ctx)?;
        let opportunity = if opportunity {
            let (o, name) = index("Opportunity", "Name")?;
            let close = (ctx.now / 86_400_000) as i32 + 30;
            let fields = vec![
                (name, company.clone()),
                (
                    index("Opportunity", "StageName")?.1,
                    Value::Text("Prospecting".into()),
                ),
                (index("Opportunity", "CloseDate")?.1, Value::Date(close)),
                (index("Opportunity", "AccountId")?.1, Value::Ref(account)),
            ];
            Some(self.create(o, fields, ctx)?)
        } else {
            None
        };
        // The lead's Tasks follow the contact (unconfirmed: where they had no
        // related record, the opportunity, else the account).
        self.move_related(
            "Task",
            "WhoId",
            lead,
            contact,
            Some(("WhatId", opportunity.unwrap_or(account))),
            ctx,
        )?;
        // The conversion fields are read-only to the API: written as the
        // platform writes them.
        let platform = WriteCtx {
            seed: true,
            ..ctx.clone()
        };
        let mut fields = vec![
            (index("Lead", "IsConverted")?.1, Value::Bool(true)),
            (index("Lead", "ConvertedContactId")?.1, Value::Ref(contact)),
            (index("Lead", "ConvertedAccountId")?.1, Value::Ref(account)),
            (
                index("Lead", "ConvertedDate")?.1,
                Value::Date((ctx.now / 86_400_000) as i32),
            ),
        ];
        if let Some(o) = opportunity {
            fields.push((index("Lead", "ConvertedOpportunityId")?.1, Value::Ref(o)));
        }
        self.update(lead, fields, &platform)?;
        Ok(Converted {
            account,
            contact,
            opportunity,
        })
    }
}
