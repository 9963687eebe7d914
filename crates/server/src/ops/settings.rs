//! ListAccountSettings, PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting.
//!
//! A principal's own setting wins over the account default (PutAccountSettingDefault), which
//! wins over ECS's built-in default.

use berth_api::shapes::{
    DeleteAccountSettingRequest, ListAccountSettingsRequest, ListAccountSettingsResponse,
    PutAccountSettingRequest, Setting, SettingResponse,
};
use berth_api::{paging, validate, EcsError};

use crate::core::{decode, Core, Ctx};
use crate::keys;

/// Every setting name and its built-in default.
const SETTINGS: &[(&str, &str)] = &[
    ("serviceLongArnFormat", "enabled"),
    ("taskLongArnFormat", "enabled"),
    ("containerInstanceLongArnFormat", "enabled"),
    ("awsvpcTrunking", "disabled"),
    ("containerInsights", "disabled"),
    ("fargateFIPSMode", "disabled"),
    ("tagResourceAuthorization", "on"),
    ("fargateTaskRetirementWaitPeriod", "7"),
    ("guardDutyActivate", "off"),
    ("defaultLogDriverMode", "non-blocking"),
    ("fargateEventWindows", "disabled"),
];

fn check(name: &str, value: Option<&str>) -> Result<(), EcsError> {
    let names: Vec<&str> = SETTINGS.iter().map(|(n, _)| *n).collect();
    validate::one_of("setting name", name, &names)?;
    let Some(value) = value else { return Ok(()) };
    let allowed: &[&str] = match name {
        "containerInsights" => &["enabled", "disabled", "enhanced"],
        "tagResourceAuthorization" | "guardDutyActivate" => &["on", "off"],
        "fargateTaskRetirementWaitPeriod" => &["0", "7", "14"],
        "defaultLogDriverMode" => &["blocking", "non-blocking"],
        _ => &["enabled", "disabled"],
    };
    validate::one_of(&format!("value for {name}"), value, allowed)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    value: String,
}

impl Core {
    fn root(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account)
    }

    async fn stored(&self, key: &str) -> Result<Option<String>, EcsError> {
        Ok(self.get::<Stored>(key).await?.map(|(s, _)| s.value))
    }

    async fn effective(&self, principal: &str, name: &str) -> Result<String, EcsError> {
        if let Some(v) = self
            .stored(&keys::setting_principal(principal, name))
            .await?
        {
            return Ok(v);
        }
        if let Some(v) = self.stored(&keys::setting_default(name)).await? {
            return Ok(v);
        }
        Ok(SETTINGS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("disabled", |(_, d)| d)
            .to_owned())
    }

    pub async fn put_account_setting(
        &self,
        _ctx: &Ctx,
        req: PutAccountSettingRequest,
    ) -> Result<SettingResponse, EcsError> {
        check(&req.name, Some(&req.value))?;
        let principal = req.principal_arn.clone().unwrap_or_else(|| self.root());
        let v = Stored {
            value: req.value.clone(),
        };
        self.store
            .put(
                &keys::setting_principal(&principal, &req.name),
                crate::core::encode(&v)?,
            )
            .await
            .map_err(crate::core::store_err)?;
        Ok(SettingResponse {
            setting: Setting {
                name: req.name,
                value: req.value,
                principal_arn: Some(principal),
                kind: Some("user".into()),
            },
        })
    }

    pub async fn put_account_setting_default(
        &self,
        _ctx: &Ctx,
        req: PutAccountSettingRequest,
    ) -> Result<SettingResponse, EcsError> {
        if req.principal_arn.is_some() {
            return Err(EcsError::invalid(
                "PutAccountSettingDefault takes no principalArn",
            ));
        }
        check(&req.name, Some(&req.value))?;
        let v = Stored {
            value: req.value.clone(),
        };
        self.store
            .put(&keys::setting_default(&req.name), crate::core::encode(&v)?)
            .await
            .map_err(crate::core::store_err)?;
        Ok(SettingResponse {
            setting: Setting {
                name: req.name,
                value: req.value,
                principal_arn: Some(self.root()),
                kind: Some("user".into()),
            },
        })
    }

    pub async fn delete_account_setting(
        &self,
        _ctx: &Ctx,
        req: DeleteAccountSettingRequest,
    ) -> Result<SettingResponse, EcsError> {
        check(&req.name, None)?;
        let principal = req.principal_arn.clone().unwrap_or_else(|| self.root());
        let key = keys::setting_principal(&principal, &req.name);
        let old = self.stored(&key).await?;
        self.store
            .delete(&key)
            .await
            .map_err(crate::core::store_err)?;
        let value = match old {
            Some(v) => v,
            None => self.effective(&principal, &req.name).await?,
        };
        Ok(SettingResponse {
            setting: Setting {
                name: req.name,
                value,
                principal_arn: Some(principal),
                kind: Some("user".into()),
            },
        })
    }

    pub async fn list_account_settings(
        &self,
        _ctx: &Ctx,
        req: ListAccountSettingsRequest,
    ) -> Result<ListAccountSettingsResponse, EcsError> {
        if let Some(n) = &req.name {
            check(n, None)?;
        }
        if req.value.is_some() && req.name.is_none() {
            return Err(EcsError::invalid(
                "value needs name: filter on a setting name",
            ));
        }
        let limit = paging::max_results(req.max_results, 10, 10)?;
        let principal = req.principal_arn.clone().unwrap_or_else(|| self.root());
        let mut all: Vec<Setting> = Vec::new();
        if req.effective_settings.unwrap_or(false) {
            for (name, _) in SETTINGS {
                let value = self.effective(&principal, name).await?;
                all.push(Setting {
                    name: (*name).to_owned(),
                    value,
                    principal_arn: Some(principal.clone()),
                    kind: Some("user".into()),
                });
            }
        } else {
            for kv in self
                .range_all(&keys::settings_of_principal(&principal))
                .await?
            {
                let s: Stored = decode(&kv)?;
                all.push(Setting {
                    name: keys::last_segment(&kv.key).to_owned(),
                    value: s.value,
                    principal_arn: Some(principal.clone()),
                    kind: Some("user".into()),
                });
            }
        }
        all.retain(|s| {
            req.name.as_ref().is_none_or(|n| &s.name == n)
                && req.value.as_ref().is_none_or(|v| &s.value == v)
        });
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let start = match req.next_token.as_deref() {
            Some(t) => {
                let after = paging::decode_token(t)?;
                all.iter().position(|s| s.name > after).unwrap_or(all.len())
            }
            None => 0,
        };
        let page: Vec<Setting> = all[start.min(all.len())..]
            .iter()
            .take(limit)
            .cloned()
            .collect();
        let next_token = (start + page.len() < all.len())
            .then(|| page.last().map(|s| paging::encode_token(&s.name)))
            .flatten();
        Ok(ListAccountSettingsResponse {
            settings: page,
            next_token,
        })
    }
}
