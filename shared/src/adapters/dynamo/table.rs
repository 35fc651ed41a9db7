//! The table's creation, for local stacks and tests (the template creates it
//! in AWS).

use super::*;

/// Creates the table as `template.yaml` declares it (pk/sk, gsi1, gsi2, TTL on `ttl`,
/// on-demand). Used by tests and the local stack against moto.
pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
    let attr = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))
    };
    let key_elem = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))
    };
    let gsi = |name: &str, pk: &str, sk: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key_elem(pk, KeyType::Hash)?)
            .key_schema(key_elem(sk, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| StoreError::Rejected(e.to_string()))
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .attribute_definitions(attr(GSI1_PK)?)
        .attribute_definitions(attr(GSI1_SK)?)
        .attribute_definitions(attr(GSI2_PK)?)
        .attribute_definitions(attr(GSI2_SK)?)
        .key_schema(key_elem(PK, KeyType::Hash)?)
        .key_schema(key_elem(SK, KeyType::Range)?)
        .global_secondary_indexes(gsi(GSI1, GSI1_PK, GSI1_SK)?)
        .global_secondary_indexes(gsi(GSI2, GSI2_PK, GSI2_SK)?)
        .send()
        .await
        .map_err(|e| map_sdk_error("CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL)
                .enabled(true)
                .build()
                .map_err(|e| StoreError::Rejected(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| map_sdk_error("UpdateTimeToLive", e))?;
    Ok(())
}
