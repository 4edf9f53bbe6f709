//! The hook table's promises: names round-trip, the forward order, SAE names, which sites a
//! decoder and an encoder fire.

use super::*;

#[test]
fn every_name_round_trips() {
    for name in HookPoint::all_names(3) {
        let point: HookPoint = name.parse().unwrap();
        assert_eq!(point.to_string(), name);
    }
}

#[test]
fn names_are_transformer_lens_strings() {
    assert_eq!(
        HookPoint::Pattern(3).to_string(),
        "blocks.3.attn.hook_pattern"
    );
    assert_eq!(
        HookPoint::Ln1Scale(0).to_string(),
        "blocks.0.ln1.hook_scale"
    );
    assert_eq!(
        HookPoint::LnFinalNormalized.to_string(),
        "ln_final.hook_normalized"
    );
    assert_eq!(
        "embed.hook_embed".parse::<HookPoint>().unwrap(),
        HookPoint::Embed
    );
}

#[test]
fn unknown_name_suggests_close_ones() {
    let err = "blocks.2.attn.hook_patern"
        .parse::<HookPoint>()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("blocks.2.attn.hook_pattern"), "{text}");
    let err = HookPoint::parse_for("blocks.9.hook_resid_pre", &[HookPoint::ResidPre(1)]);
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("blocks.1.hook_resid_pre")
    );
}

#[test]
fn sae_hooks_use_saelens_names() {
    let name = "blocks.2.hook_resid_pre.hook_sae_acts_post";
    let point: HookPoint = name.parse().unwrap();
    assert_eq!(
        point,
        HookPoint::ResidPre(2).sae(SaeSite::ActsPost).unwrap()
    );
    assert_eq!(point.to_string(), name);
    assert_eq!(point.layer(), Some(2));
    let err = "blocks.2.hook_resid_pre.hook_sae_act"
        .parse::<HookPoint>()
        .unwrap_err()
        .to_string();
    assert!(err.contains("hook_sae_acts_post"), "{err}");
    assert!(point.sae(SaeSite::Input).is_err());
    // An SAE's hooks sort right after its anchor, before the next model hook.
    let mut points = vec![HookPoint::AttnIn(2), point, HookPoint::ResidPre(2)];
    points.sort_by_key(HookPoint::forward_order);
    assert_eq!(
        points,
        vec![HookPoint::ResidPre(2), point, HookPoint::AttnIn(2)]
    );
}

#[test]
fn forward_order_sorts_layers_then_sites() {
    let mut points = vec![
        HookPoint::LnFinalScale,
        HookPoint::Q(1),
        HookPoint::Pattern(0),
        HookPoint::Embed,
    ];
    points.sort_by_key(HookPoint::forward_order);
    assert_eq!(
        points,
        vec![
            HookPoint::Embed,
            HookPoint::Pattern(0),
            HookPoint::Q(1),
            HookPoint::LnFinalScale
        ]
    );
}

#[test]
fn the_site_table_fits_an_sae_anchor() {
    assert!(SITES.len() < 256);
    // Every site's own name parses back to it.
    for (index, site) in SITES.iter().enumerate() {
        assert_eq!(
            (site.make)(2).site(),
            Some((index, if site.group == Group::Block { 2 } else { 0 }))
        );
    }
}

#[test]
fn a_gpt2_block_fires_transformer_lens_default_sites() {
    let gpt2 = DecoderSites {
        learned_positions: true,
        ..DecoderSites::default()
    };
    let names: Vec<String> = gpt2
        .block_points(0)
        .iter()
        .map(ToString::to_string)
        .collect();
    // TransformerLens' run_with_cache on GPT-2, block 0, in its order.
    let expected = [
        "hook_resid_pre",
        "ln1.hook_scale",
        "ln1.hook_normalized",
        "attn.hook_q",
        "attn.hook_k",
        "attn.hook_v",
        "attn.hook_attn_scores",
        "attn.hook_pattern",
        "attn.hook_z",
        "hook_attn_out",
        "hook_resid_mid",
        "ln2.hook_scale",
        "ln2.hook_normalized",
        "mlp.hook_pre",
        "mlp.hook_post",
        "hook_mlp_out",
        "hook_resid_post",
    ];
    let expected: Vec<String> = expected.iter().map(|n| format!("blocks.0.{n}")).collect();
    assert_eq!(names, expected);
    assert_eq!(
        gpt2.embedding_points(),
        [HookPoint::Embed, HookPoint::PosEmbed]
    );
}

#[test]
fn flags_and_architecture_change_the_sites() {
    let llama = DecoderSites {
        rotary: true,
        gated_mlp: true,
        ..DecoderSites::default()
    };
    let points = llama.block_points(1);
    assert!(points.contains(&HookPoint::RotQ(1)) && points.contains(&HookPoint::MlpPreLinear(1)));
    assert!(!llama.embedding_points().contains(&HookPoint::PosEmbed));
    let parallel = DecoderSites {
        parallel: true,
        ..DecoderSites::default()
    };
    assert!(!parallel.block_points(0).contains(&HookPoint::ResidMid(0)));
    // use_attn_in takes precedence over use_split_qkv_input, as in TransformerLens.
    let both = DecoderSites {
        attn_in: true,
        split_qkv_input: true,
        ..DecoderSites::default()
    };
    assert!(both.block_points(0).contains(&HookPoint::AttnIn(0)));
    assert!(!both.block_points(0).contains(&HookPoint::QInput(0)));
    let possible = DecoderSites {
        all_opt_in: true,
        ..DecoderSites::default()
    };
    for p in [
        HookPoint::AttnIn(0),
        HookPoint::QInput(0),
        HookPoint::AttnResult(0),
        HookPoint::MlpIn(0),
    ] {
        assert!(possible.block_points(0).contains(&p), "{p}");
    }
}

#[test]
fn the_encoder_lists_bert_sites_in_post_norm_order() {
    let names: Vec<String> = encoder_points(1).iter().map(ToString::to_string).collect();
    assert_eq!(
        names[..6],
        [
            "hook_embed",
            "hook_pos_embed",
            "embed.hook_token_type_embed",
            "embed.ln.hook_scale",
            "embed.ln.hook_normalized",
            "hook_full_embed"
        ]
    );
    let block: Vec<&str> = names[6..]
        .iter()
        .map(|n| n.trim_start_matches("blocks.0."))
        .collect();
    assert_eq!(
        block,
        [
            "hook_resid_pre",
            "attn.hook_q",
            "attn.hook_k",
            "attn.hook_v",
            "attn.hook_attn_scores",
            "attn.hook_pattern",
            "attn.hook_z",
            "hook_attn_out",
            "hook_resid_mid",
            "ln1.hook_scale",
            "ln1.hook_normalized",
            "mlp.hook_pre",
            "mlp.hook_post",
            "hook_mlp_out",
            "hook_resid_post",
            "ln2.hook_scale",
            "ln2.hook_normalized",
            "hook_normalized_resid_post"
        ]
    );
}

#[test]
fn widths_come_from_the_table() {
    assert_eq!(HookPoint::ResidPost(3).width(), Width::DModel);
    assert_eq!(HookPoint::K(0).width(), Width::KvHeads);
    assert_eq!(HookPoint::Z(0).width(), Width::QueryHeads);
    assert_eq!(HookPoint::MlpPost(0).width(), Width::DMlp);
    assert_eq!(HookPoint::Pattern(0).width(), Width::None);
}
