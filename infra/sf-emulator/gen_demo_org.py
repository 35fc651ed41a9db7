#!/usr/bin/env python3
"""Generates demo-org.json (deterministic): python3 gen_demo_org.py > demo-org.json

A realistic small org for the local stack and the demo: an admin, sales reps, an
inactive user and a partner (non-Standard) user; accounts with websites; contacts
and leads with French and US phone formats; open and closed opportunities with
contact roles; email activities; call Tasks already logged by a dialer.
Times are relative ("$now-3d2h") so the data always looks recent.
"""
import base64
import json
import random

rng = random.Random(42)
DOMAIN = "acme-demo.com"

users = [
    {"ref": "admin", "username": f"admin@{DOMAIN}", "email": f"admin@{DOMAIN}", "first_name": "Alice", "last_name": "Admin", "password": "demo1234", "title": "Salesforce Administrator"},
    {"ref": "rep1", "username": f"sophie.martin@{DOMAIN}", "email": "sophie.martin@modjo-demo.ai", "first_name": "Sophie", "last_name": "Martin", "password": "demo1234", "title": "Account Executive", "mobile_phone": "+33 6 70 11 22 33"},
    {"ref": "rep2", "username": f"lucas.bernard@{DOMAIN}", "email": "lucas.bernard@modjo-demo.ai", "first_name": "Lucas", "last_name": "Bernard", "password": "demo1234", "title": "Account Executive"},
    {"ref": "rep3", "username": f"emma.dubois@{DOMAIN}", "email": "emma.dubois@modjo-demo.ai", "first_name": "Emma", "last_name": "Dubois", "password": "demo1234", "title": "SDR"},
    {"ref": "rep4", "username": f"james.miller@{DOMAIN}", "email": "james.miller@modjo-demo.ai", "first_name": "James", "last_name": "Miller", "password": "demo1234", "title": "Account Executive (US)"},
    {"ref": "rep5", "username": f"olivia.brown@{DOMAIN}", "email": "olivia.brown@modjo-demo.ai", "first_name": "Olivia", "last_name": "Brown", "password": "demo1234", "title": "SDR (US)"},
    {"ref": "former", "username": f"paul.former@{DOMAIN}", "email": "paul.former@modjo-demo.ai", "first_name": "Paul", "last_name": "Former", "password": "demo1234", "active": False, "title": "Former AE"},
    {"ref": "partner", "username": f"reseller@partner-{DOMAIN}", "email": "contact@reseller-demo.fr", "first_name": "Rene", "last_name": "Reseller", "password": "demo1234", "user_type": "PowerPartner"},
]
reps = ["rep1", "rep2", "rep3", "rep4", "rep5"]
fr_reps = ["rep1", "rep2", "rep3"]
us_reps = ["rep4", "rep5"]

fr_companies = ["Boulangerie Durand", "Transports Lefebvre", "Cabinet Moreau", "Atelier Girard", "Groupe Lambert", "Vins Fontaine", "Clinique Rousseau", "Immobilier Mercier", "Agence Blanc", "Logistique Faure", "Energie Chevalier", "Textiles Garnier", "Assurances Roux", "Hotel Perrin", "Studio Morel"]
us_companies = ["Redwood Analytics", "Golden Gate Robotics", "Mission Street Media", "Bayview Logistics", "Sunset Software", "Nob Hill Capital", "Presidio Health", "Embarcadero Foods", "Castro Design Co", "Potrero Energy", "Marina Legal", "Haight Apparel", "Union Square Retail", "SoMa Security", "Twin Peaks Travel"]
fr_first = ["Camille", "Julien", "Chloe", "Nicolas", "Manon", "Thomas", "Lea", "Antoine", "Ines", "Hugo", "Sarah", "Maxime", "Clara", "Romain", "Jade"]
fr_last = ["Durand", "Lefebvre", "Moreau", "Girard", "Lambert", "Fontaine", "Rousseau", "Mercier", "Blanc", "Faure", "Chevalier", "Garnier", "Roux", "Perrin", "Morel", "Petit", "Leroy"]
us_first = ["Michael", "Jennifer", "David", "Jessica", "Daniel", "Ashley", "Matthew", "Amanda", "Andrew", "Megan", "Ryan", "Lauren", "Brian", "Rachel", "Kevin"]
us_last = ["Johnson", "Williams", "Davis", "Garcia", "Rodriguez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "White", "Harris", "Clark", "Lewis"]
titles = ["CEO", "CTO", "Head of Sales", "VP Sales", "Sales Manager", "Operations Director", "CFO", "Procurement Lead", "Marketing Director"]


def slug(name):
    return "".join(c for c in name.lower() if c.isalnum())


def fr_mobile():
    d = [rng.randint(0, 9) for _ in range(8)]
    s = "6" + "".join(map(str, d))
    fmt = rng.choice(["local", "intl", "e164"])
    if fmt == "local":
        return "0" + s[0] + " " + " ".join(s[i:i + 2] for i in range(1, 9, 2))
    if fmt == "intl":
        return "+33 " + s[0] + " " + " ".join(s[i:i + 2] for i in range(1, 9, 2))
    return "+33" + s


def fr_landline():
    area = rng.choice(["1", "4", "5"])
    d = "".join(str(rng.randint(0, 9)) for _ in range(8))
    pairs = [d[i:i + 2] for i in range(0, 8, 2)]
    fmt = rng.choice(["dots", "intl", "local"])
    if fmt == "dots":
        return "0" + area + "." + ".".join(pairs)
    if fmt == "intl":
        return "+33 " + area + " " + " ".join(pairs)
    return "0" + area + " " + " ".join(pairs)


def us_phone():
    area = rng.choice(["415", "650", "212", "646", "312"])
    n = f"{rng.randint(200, 999)}"
    m = f"{rng.randint(0, 9999):04d}"
    fmt = rng.choice(["paren", "dash", "e164"])
    if fmt == "paren":
        return f"({area}) {n}-{m}"
    if fmt == "dash":
        return f"+1 {area}-{n}-{m}"
    return f"+1{area}{n}{m}"


records = []


def add(t, ref, fields):
    r = {"type": t, "fields": fields}
    if ref:
        r["ref"] = ref
    records.append(r)


accounts = []
for i, name in enumerate(fr_companies + us_companies):
    fr = i < len(fr_companies)
    ref = f"acc{i}"
    owner = rng.choice(fr_reps if fr else us_reps)
    days = rng.randint(60, 400)
    add("Account", ref, {
        "Name": name,
        "Website": f"https://www.{slug(name)}.{'fr' if fr else 'com'}",
        "Phone": fr_landline() if fr else us_phone(),
        "Industry": rng.choice(["Retail", "Technology", "Healthcare", "Finance", "Manufacturing", "Transportation"]),
        "BillingCity": rng.choice(["Paris", "Lyon", "Bordeaux", "Lille", "Nantes"]) if fr else "San Francisco",
        "BillingCountry": "France" if fr else "United States",
        "NumberOfEmployees": rng.choice([12, 45, 120, 340, 1200]),
        "OwnerId": "@" + owner,
        "CreatedDate": f"$now-{days}d",
        "LastModifiedDate": f"$now-{rng.randint(1, 59)}d",
    })
    accounts.append((ref, fr, owner, name))

# The phone numbers the demo scenario dials are fixed and documented.
fixed_phones = {0: ("MobilePhone", "06 12 34 56 78"), 1: ("Phone", "+33 1 42 68 53 00"), 2: ("Phone", "01.42.68.53.00"), 60: ("Phone", "(415) 555-0132"), 61: ("MobilePhone", "+1 415-555-0199")}
contacts = []
ci = 0
for ref, fr, owner, name in accounts:
    for k in range(4):
        first = rng.choice(fr_first if fr else us_first)
        last = rng.choice(fr_last if fr else us_last)
        cref = f"con{ci}"
        f = {
            "FirstName": first,
            "LastName": last,
            "Email": f"{first.lower()}.{last.lower()}@{slug(name)}.{'fr' if fr else 'com'}",
            "Title": rng.choice(titles),
            "AccountId": "@" + ref,
            "OwnerId": "@" + owner,
            "CreatedDate": f"$now-{rng.randint(30, 300)}d",
            "LastModifiedDate": f"$now-{rng.randint(0, 29)}d{rng.randint(0, 23)}h",
        }
        if fr:
            f["MobilePhone"] = fr_mobile()
            if rng.random() < 0.6:
                f["Phone"] = fr_landline()
        else:
            f["Phone"] = us_phone()
            if rng.random() < 0.4:
                f["MobilePhone"] = us_phone()
        if ci in fixed_phones:
            field, value = fixed_phones[ci]
            f[field] = value
        add("Contact", cref, f)
        contacts.append((cref, ref, fr, owner, f"{first} {last}", f.get("MobilePhone") or f.get("Phone")))
        ci += 1

leads = []
for i in range(40):
    fr = i < 24
    first = rng.choice(fr_first if fr else us_first)
    last = rng.choice(fr_last if fr else us_last)
    company = (rng.choice(["SARL ", "SAS ", "Maison ", "Societe "]) + rng.choice(fr_last)) if fr else (rng.choice(us_last) + rng.choice([" Labs", " Inc", " Partners", " Studio"]))
    lref = f"lead{i}"
    f = {
        "FirstName": first,
        "LastName": last,
        "Company": company,
        "Email": f"{first.lower()}@{slug(company)}.{'fr' if fr else 'com'}",
        "Status": rng.choice(["Open - Not Contacted", "Working - Contacted", "Working - Contacted", "Closed - Not Converted"]),
        "LeadSource": rng.choice(["Web", "Phone Inquiry", "Partner Referral", "Trade Show"]),
        "OwnerId": "@" + rng.choice(fr_reps if fr else us_reps),
        "CreatedDate": f"$now-{rng.randint(1, 90)}d",
        "LastModifiedDate": f"$now-{rng.randint(0, 0)}d{rng.randint(1, 20)}h",
    }
    if fr:
        f["MobilePhone" if rng.random() < 0.5 else "Phone"] = fr_mobile()
    else:
        f["Phone"] = us_phone()
    if i == 0:
        f["MobilePhone"] = "07 98 76 54 32"
    add("Lead", lref, f)
    leads.append((lref, fr, f.get("MobilePhone") or f.get("Phone"), f"{first} {last}"))

stages_open = ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote", "Negotiation/Review"]
opps = []
for i in range(30):
    ref, fr, owner, name = accounts[i % len(accounts)]
    closed = i >= 20
    stage = rng.choice(["Closed Won", "Closed Lost"]) if closed else rng.choice(stages_open)
    oref = f"opp{i}"
    add("Opportunity", oref, {
        "Name": f"{name} - {rng.choice(['Platform', 'Expansion', 'Pilot', 'Renewal'])}",
        "AccountId": "@" + ref,
        "StageName": stage,
        "Amount": float(rng.choice([8000, 15000, 24000, 48000, 96000])),
        "CloseDate": f"$today-{rng.randint(5, 90)}d" if closed else f"$today+{rng.randint(7, 120)}d",
        "Type": rng.choice(["New Business", "Existing Business"]),
        "OwnerId": "@" + owner,
        "CreatedDate": f"$now-{rng.randint(20, 200)}d",
        "LastModifiedDate": f"$now-{rng.randint(0, 19)}d",
    })
    opps.append((oref, ref))
    acc_contacts = [c for c in contacts if c[1] == ref]
    for k, c in enumerate(acc_contacts[: rng.randint(1, 3)]):
        add("OpportunityContactRole", f"ocr{i}_{k}", {
            "OpportunityId": "@" + oref,
            "ContactId": "@" + c[0],
            "Role": rng.choice(["Decision Maker", "Economic Buyer", "Evaluator", "Technical Buyer", "Influencer"]),
            "IsPrimary": k == 0,
        })

# Email activities: EmailMessage + relations, and Tasks of subtype Email.
for i in range(20):
    c = contacts[i * 5 % len(contacts)]
    rep = c[3]
    rep_user = next(u for u in users if u["ref"] == rep)
    when = f"$now-{rng.randint(1, 25)}d{rng.randint(0, 23)}h"
    subject = rng.choice(["Follow-up on our call", "Proposal attached", "Next steps", "Meeting recap", "Pricing question"])
    em = f"email{i}"
    add("EmailMessage", em, {
        "Subject": subject,
        "FromAddress": rep_user["email"],
        "FromName": f"{rep_user['first_name']} {rep_user['last_name']}",
        "ToAddress": f"{c[4].split()[0].lower()}@example.com",
        "MessageDate": when,
        "Incoming": False,
        "Status": "3",
        "RelatedToId": "@" + c[1],
        "TextBody": f"Hello {c[4].split()[0]},\n\nThanks for your time today. {subject}.\n\nBest,\n{rep_user['first_name']}",
        "CreatedDate": when,
        "LastModifiedDate": when,
    })
    add("EmailMessageRelation", None, {"EmailMessageId": "@" + em, "RelationId": "@" + c[0], "RelationType": "ToAddress", "RelationAddress": f"{c[4].split()[0].lower()}@example.com"})
    add("EmailMessageRelation", None, {"EmailMessageId": "@" + em, "RelationId": "@" + rep, "RelationType": "FromAddress", "RelationAddress": rep_user["email"]})
for i in range(25):
    c = contacts[(i * 7 + 3) % len(contacts)]
    days = rng.randint(1, 28)
    when = f"$now-{days}d{rng.randint(0, 23)}h"
    add("Task", None, {
        "Subject": "Email: " + rng.choice(["Intro", "Case study", "Quick question", "Demo invitation"]),
        "TaskSubtype": "Email",
        "Type": "Email",
        "Status": "Completed",
        "Priority": "Normal",
        "WhoId": "@" + c[0],
        "WhatId": "@" + c[1],
        "OwnerId": "@" + c[3],
        "ActivityDate": f"$today-{days}d",
        "Description": "Logged from Outlook.",
        "CreatedDate": when,
        "LastModifiedDate": when,
    })

# Calls already logged by the dialer (Aircall-like).
for i in range(40):
    use_lead = i % 8 == 7
    inbound = rng.random() < 0.35
    answered = rng.random() < 0.75
    if use_lead:
        lref, fr, phone, lname = leads[i % len(leads)]
        who, what, owner = lref, None, rng.choice(fr_reps if fr else us_reps)
    else:
        cref, aref, fr, owner, cname, phone = contacts[(i * 3) % len(contacts)]
        who, what = cref, aref
    direction = "Inbound" if inbound else "Outbound"
    status = "answered" if answered else ("missed" if inbound else "not answered")
    duration = rng.randint(45, 1500) if answered else 0
    call_id = 1874000 + i * 37
    days = rng.randint(0, 14)
    when = f"$now-{days}d{rng.randint(0, 9)}h{rng.randint(0, 59)}m"
    f = {
        "Subject": f"{direction} {status} call {'from' if inbound else 'to'} {phone}",
        "TaskSubtype": "Call",
        "Type": "Call",
        "CallType": direction,
        "CallDurationInSeconds": duration,
        "CallDisposition": f"{phone} - {status}",
        "Status": "Completed",
        "Priority": "Normal",
        "WhoId": "@" + who,
        "OwnerId": "@" + owner,
        "ActivityDate": f"$today-{days}d",
        "Description": f"Call {status} by Aircall.\nRecording: https://assets.aircall.io/calls/{call_id}/recording\nNumber: {phone}",
        "CreatedDate": when,
        "LastModifiedDate": when,
    }
    if i % 3 == 0:
        f["CallObject"] = str(call_id)
    if what:
        f["WhatId"] = "@" + what
    add("Task", f"call{i}", f)

# A few notes linked to accounts and opportunities.
for i in range(6):
    ref, fr, owner, name = accounts[i]
    html = f"<p>Discovery notes for {name}: budget confirmed, decision in Q{rng.randint(1, 4)}.</p>"
    add("ContentNote", f"note{i}", {"Title": f"Notes - {name}", "Content": base64.b64encode(html.encode()).decode(), "OwnerId": "@" + owner})
    add("ContentDocumentLink", None, {"ContentDocumentId": f"@note{i}", "LinkedEntityId": "@" + ref, "ShareType": "V", "Visibility": "AllUsers"})

# Two deleted records so that queryAll and getDeleted have something to show.
add("Contact", "deleted1", {"FirstName": "Old", "LastName": "Duplicate", "Email": "old.duplicate@example.com", "AccountId": "@acc0", "IsDeleted": True, "LastModifiedDate": "$now-2d"})
add("Lead", "deleted2", {"LastName": "Spam", "Company": "Spam Inc", "IsDeleted": True, "LastModifiedDate": "$now-1d"})

seed = {
    "orgs": [
        {
            "key": "demo",
            "name": "Acme Demo Org",
            "api_daily_limit": 15000,
            # Change Data Capture, as the seed has every customer enable it.
            "cdc": ["Opportunity", "OpportunityContactRole"],
            "apps": [
                {
                    "name": "Modjo Integration",
                    "consumer_key": "3MVG9DemoModjoConsumerKey0000000000000000000000000000000000000000000000000000",
                    "consumer_secret": "DEMO0000000000000000000000000000000000000000000000000000000000000SECRET",
                    "callback_url": "http://127.0.0.1:8080/integrations/salesforce/callback",
                    "rotate_refresh_tokens": False,
                }
            ],
            "users": users,
            "records": records,
        }
    ]
}
print(json.dumps(seed, indent=1, ensure_ascii=False))
