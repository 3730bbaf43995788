// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Eip3009Token} from "./Eip3009Token.sol";

/// @notice USDC-like test token: the EIP-712 domain of USDC on Base and Ethereum ("USD Coin", "2").
contract TestUSDC is Eip3009Token {
    constructor() Eip3009Token("USD Coin", "USDC", "2") {}
}
